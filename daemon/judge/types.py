"""The values a judgement is made of, shared by every kind's conformance and its readers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    check: str
    ok: bool
    value: float | None
    limit: float | str | None
    detail: str
    condition: str  # the process condition the check proves, in plain words


@dataclass(frozen=True)
class StepOutcome:
    type: str
    name: str
    result: str  # completed | aborted | failed | skipped
    started_t_s: float
    ended_t_s: float | None
    detail: str = ""


Metrics = dict[str, float | None]
