"""Builds the C twins of the hot numeric kernels with the project (docs/adr/0186).

Each twin is one C file next to the Python module it mirrors. It is compiled with this
Python's compiler and headers, without fused multiply-adds (``-ffp-contract=off``) or any
fast-math, so that it rounds as Python does. An editable install (``uv sync``) puts the
built module next to its source; a wheel carries it. Where there is no C compiler (or no
Python headers) the build goes on without it and the Python reference runs, slower, with
the same results: the build says so on stderr.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# Module path (without the extension suffix) -> its C source, both from the project root.
KERNELS = {
    "drivers/sim/plant/_panel_native": "drivers/sim/plant/_panel_native.c",
    "daemon/judge/_series_native": "daemon/judge/_series_native.c",
}
# -O2 reorders no floating-point operation; the two -f flags keep it that way everywhere.
CFLAGS = ["-O2", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math", "-Wall"]


def compile_kernel(source: Path, target: Path) -> str | None:
    """Compile ``source`` into the extension module ``target``; None, or why it failed."""
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").is_file():
        return f"no Python.h in {include} (install the Python headers, e.g. python3-dev)"
    cmd = [*cc, *CFLAGS, f"-I{include}", str(source), "-o", str(target)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        return f"{cc[0]}: {exc}"
    if done.returncode != 0:
        return f"{shlex.join(cmd)} failed:\n{done.stderr.strip()}"
    return None


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        built = False
        out_dir = Path(tempfile.mkdtemp(prefix="bonderd-native-"))
        for module, source in KERNELS.items():
            name = module + suffix
            # Editable: beside its source, where the project's path finds it.
            target = root / name if version == "editable" else out_dir / Path(name).name
            why = compile_kernel(root / source, target)
            if why is not None:
                print(
                    f"bonderd build: {source} not compiled, its Python reference will run "
                    f"(docs/adr/0186): {why}",
                    file=sys.stderr,
                )
                continue
            built = True
            if version != "editable":
                build_data["force_include"][str(target)] = name
        if built and version != "editable":
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
