"""The serve bench runs the daemon at the service unit's priority when it may (ADR 0096)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.serve_bench import UNIT, achievable_nice, unit_nice


def test_the_priority_is_the_shipped_units() -> None:
    lines = [ln for ln in UNIT.read_text().splitlines() if ln.startswith("Nice=")]
    assert len(lines) == 1
    assert unit_nice() == int(lines[0].removeprefix("Nice="))


def test_a_unit_without_nice_means_the_default_priority(tmp_path: Path) -> None:
    unit = tmp_path / "x.service"
    unit.write_text("[Service]\n# Nice=-5 is only a comment here\nExecStart=/bin/true\n")
    assert unit_nice(unit) == 0


def test_without_the_right_to_raise_priority_the_bench_says_it_ran_at_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)

    def refuse(_which: int, _who: int, _prio: int) -> None:
        raise PermissionError("not permitted")

    monkeypatch.setattr(os, "setpriority", refuse)
    assert achievable_nice(own - 5) == own
    assert achievable_nice(own + 3) == own + 3  # lowering priority needs no right
