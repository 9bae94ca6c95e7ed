"""The station's history: the recorded runs, a run's report and its trace as CSV.

Blocking (SQLite, rendering): each function opens a store of its own and is called in a
worker thread, as the controller's ``list_runs`` and ``get_report`` are.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from daemon.report import render_report
from daemon.store.export import write_csv
from daemon.store.records import RunStore
from daemon.store.summary import run_summary


class RunsQuery(BaseModel):
    """``GET /api/runs``'s filters."""

    model_config = ConfigDict(extra="forbid")
    lot: Annotated[str | None, Field(max_length=64)] = None
    recipe: Annotated[str | None, Field(max_length=100)] = None
    result: Literal["completed", "failed", "aborted", "running"] | None = None
    limit: Annotated[int, Field(ge=1, le=500)] = 50


RUNS_SCANNED: Final = 500  # the newest runs a filter looks through (the controller's maximum)


def list_runs(
    data_dir: Path,
    *,
    lot: str | None = None,
    recipe: str | None = None,
    result: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The runs newest first, those matching every filter given (a lot id contains ``lot``,
    case-insensitive; ``recipe`` and ``result`` exactly), at most ``limit``."""
    with RunStore(data_dir) as store:
        runs = [run_summary(r) for r in store.list_runs(RUNS_SCANNED)]
    picked = []
    for run in runs:
        if lot and lot.lower() not in run["lot_id"].lower():
            continue
        if recipe and run["recipe"]["name"] != recipe:
            continue
        if result and run["result"] != result:
            continue
        picked.append(run)
        if len(picked) >= limit:
            break
    return picked


def report_html(data_dir: Path, run_id: str) -> str | None:
    """The run's report page, as `bonderd report` writes it; None for an unknown run."""
    with RunStore(data_dir) as store:
        record = store.get_run(run_id)
        if record is None:
            return None
        return render_report(record, store.samples(run_id))


def trace_csv(data_dir: Path, run_id: str) -> str | None:
    """The run's trace as `bonderd export` writes it; None for an unknown run."""
    with RunStore(data_dir) as store:
        if store.get_run(run_id) is None:
            return None
        out = io.StringIO()
        write_csv(store.samples(run_id), out)
        return out.getvalue()
