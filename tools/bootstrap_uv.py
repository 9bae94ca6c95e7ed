"""Fetch the pinned uv binary from PyPI using only the standard library.

A fresh Debian machine has python3 but often neither pip nor the venv module; uv brings
both jobs (virtual environment, locked install) in one static binary, and PyPI ships it as
a wheel. The version and the wheel hashes are pinned here, so set-up is reproducible.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import stat
import sys
import urllib.request
import zipfile
from pathlib import Path

UV_VERSION = "0.13.9"
WHEELS = {
    "x86_64": (
        f"uv-{UV_VERSION}-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19",
    ),
    "aarch64": (
        f"uv-{UV_VERSION}-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl",
        "5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe",
    ),
}
INDEX = os.environ.get("BONDERD_PYPI_SIMPLE", "https://pypi.org/simple")


def main(dest: Path) -> int:
    machine = platform.machine().lower()
    if machine not in WHEELS:
        print(f"bootstrap: no pinned uv wheel for machine '{machine}'", file=sys.stderr)
        return 1
    filename, sha256 = WHEELS[machine]
    req = urllib.request.Request(
        f"{INDEX}/uv/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        files = json.load(resp)["files"]
    url = next((f["url"] for f in files if f["filename"] == filename), None)
    if url is None:
        print(f"bootstrap: {filename} not found on {INDEX}", file=sys.stderr)
        return 1
    print(f"bootstrap: fetching {filename}", file=sys.stderr)
    with urllib.request.urlopen(url, timeout=300) as resp:
        data = resp.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        print(f"bootstrap: sha256 mismatch for {filename}; refusing it", file=sys.stderr)
        return 1
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(data)) as wheel:
        member = f"uv-{UV_VERSION}.data/scripts/uv"
        target = dest / "uv"
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(wheel.read(member))
        tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        tmp.replace(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ".tools")))
