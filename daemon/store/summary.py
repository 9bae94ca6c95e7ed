"""A recorded run in one line's worth of fields: the daemon's ``list_runs`` reply and
``bonderd runs`` give the same summary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from daemon.store.records import RunRecord


def iso_utc(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_summary(run: RunRecord) -> dict[str, Any]:
    # `state` is the record's (running while a run lasts); `result` is the result document's
    # verdict, absent until the run has finished (and for a run a crash interrupted).
    result = run.result.get("result") if run.result is not None else None
    return {
        "run_id": run.run_id,
        "recipe": {
            "name": run.recipe_name,
            "version": run.recipe_version,
            "sha256": run.recipe_sha256,
        },
        "lot_id": run.lot_id,
        "operator": run.operator,
        "state": run.state,
        "result": result if result is not None else (None if run.state == "running" else run.state),
        "reason": run.reason,
        "started_at": iso_utc(run.started_at),
        "ended_at": iso_utc(run.ended_at),
    }
