"""Run reports (``bonderd report``): one self-contained HTML file per run (ADR 0040)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from daemon.report.html import render_report
from daemon.store.records import RunStore, UnknownRun

__all__ = ["render_report", "write_report"]


def write_report(store: RunStore, run_id: str, out_dir: Path, *, prediction: bool = False) -> Path:
    """Write ``<out_dir>/<run_id>.html``; raises :class:`UnknownRun` for an unknown run.

    ``prediction``: the run was on the machine's twin; the page says so everywhere.

    Written to a temporary file and renamed, so a reader never sees half a report.
    """
    if Path(run_id).name != run_id or run_id.startswith("."):
        # Run ids come from the executor; anything else must not steer the file elsewhere.
        raise UnknownRun(run_id)
    record = store.get_run(run_id)
    if record is None:
        raise UnknownRun(run_id)
    html = render_report(record, store.samples(run_id), prediction=prediction)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{run_id}.html"
    # Opened exclusively under a name of its own (not mkstemp, whose 0600 would ignore the
    # umask and hide the report from the quality team's reader).
    tmp = out_dir / f".{run_id}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with tmp.open("x", encoding="utf-8") as f:
            f.write(html)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
