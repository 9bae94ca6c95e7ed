"""Plain-text tables for the command lines (`bonderctl runs`, `bonderd runs`, recipes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; the last one is not padded."""
    table = [tuple(header), *(tuple(r) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]))


def print_runs(runs: Sequence[dict[str, Any]]) -> None:
    """Run summaries (the ``list_runs`` reply's, or ``bonderd runs``'s own), newest first."""
    if not runs:
        print("no runs recorded")
        return
    rows = []
    for r in runs:
        recipe = r.get("recipe") or {}
        rows.append(
            (
                str(r.get("run_id")),
                f"{recipe.get('name')} v{recipe.get('version')}",
                str(r.get("lot_id") or "—"),
                str(r.get("result") or r.get("state")),
                str(r.get("operator") or "—"),
                str(r.get("started_at")),
            )
        )
    print_table(("RUN ID", "RECIPE", "LOT", "RESULT", "OPERATOR", "STARTED"), rows)
