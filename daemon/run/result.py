"""The result document (CONTRACT.md "The result document"): what the MES receives per run.

Its fields are a contract: add fields, never rename or remove them. ``schema_version`` lets a
reader tell the forms apart if a change ever has to break one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict

from daemon.judge.types import Check, StepOutcome

SCHEMA_VERSION: Final = 1

RunResult = Literal["completed", "aborted", "failed"]
StepResult = Literal["completed", "aborted", "failed", "skipped"]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RecipeRef(_Doc):
    name: str
    version: int
    sha256: str


class StepEntry(_Doc):
    type: str
    name: str
    result: StepResult
    duration_s: float | None  # None when the step never ended (a crash)


class ConformanceEntry(_Doc):
    check: str
    ok: bool
    value: float | None
    limit: float | str | None
    detail: str
    condition: str


class AlarmEntry(_Doc):
    t_s: float
    code: str
    severity: str
    message: str


class SiteEntry(_Doc):
    """One site of a panel (docs/panel.md): judged on its thermocouple, or on an estimate."""

    site: int
    row: int
    col: int
    instrumented: bool
    channel: str
    peak_c: float | None
    tal_s: float | None
    ok: bool
    failed_checks: list[str]
    estimate: str | None = None  # how an uninstrumented site's temperature was estimated


class ResultDocument(_Doc):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    recipe: RecipeRef
    lot_id: str
    operator: str
    equipment_id: str
    result: RunResult
    reason: str
    started_at: AwareDatetime
    ended_at: AwareDatetime | None
    steps: list[StepEntry]
    conformance: list[ConformanceEntry]
    metrics: dict[str, float | None]
    alarms: list[AlarmEntry]
    software_version: str
    config_hash: str
    # A panel's sites (more than one chip); a single chip's document has no such key.
    sites: list[SiteEntry] | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """The document as plain JSON types (what is published and stored)."""
        doc = self.model_dump(mode="json", exclude={"sites"} if self.sites is None else None)
        if self.sites is not None:
            for entry in doc["sites"]:
                if entry["estimate"] is None:
                    del entry["estimate"]
        return doc


class AlarmLike(Protocol):
    @property
    def t_s(self) -> float: ...
    @property
    def code(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def message(self) -> str: ...


def decide_result(
    steps: Sequence[StepOutcome], checks: Sequence[Check], *, aborted: bool
) -> RunResult:
    """``completed`` only if every step completed and every check held.

    ``aborted`` when the run was stopped (operator, interlock, crash) or a step says it was
    aborted; otherwise ``failed`` — a step failed or was skipped, or a condition was not proven.
    """
    if aborted or any(_step_result(o.result) == "aborted" for o in steps):
        return "aborted"
    if steps and all(o.result == "completed" for o in steps) and all(c.ok for c in checks):
        return "completed"
    return "failed"


def _default_reason(
    result: RunResult, steps: Sequence[StepOutcome], checks: Sequence[Check]
) -> str:
    if result == "completed":
        return "every step completed and every process condition held"
    if not steps:
        return "no step ran"
    bad_steps = [o for o in steps if o.result != "completed"]
    if bad_steps:
        o = bad_steps[0]
        return f"step {o.name!r} {o.result}" + (f": {o.detail}" if o.detail else "")
    failed = [c.check for c in checks if not c.ok]
    return "process condition not proven: " + ", ".join(failed)


def _finite(v: float | None) -> float | None:
    # JSON has no NaN or infinity; a value that is not a number is reported as absent.
    return v if v is None or math.isfinite(v) else None


def build_result(
    *,
    run_id: str,
    recipe_name: str,
    recipe_version: int,
    recipe_sha256: str,
    lot_id: str,
    operator: str,
    equipment_id: str,
    software_version: str,
    config_hash: str,
    started_at: datetime | str,
    ended_at: datetime | str | None,
    steps: Sequence[StepOutcome],
    checks: Sequence[Check],
    metrics: Mapping[str, float | None],
    alarms: Sequence[AlarmLike | Mapping[str, Any]] = (),
    aborted: bool = False,
    reason: str = "",
    sites: Sequence[Mapping[str, Any]] | None = None,
) -> ResultDocument:
    """Assemble the result document and decide the run's result (see :func:`decide_result`).

    ``steps`` holds one outcome per recipe step in recipe order, with the steps that never ran
    passed as ``skipped``: a recipe step without an outcome could not count as completed.
    ``aborted`` is True when the run was stopped (operator, interlock, shutdown). An empty
    ``reason`` is filled in from the first step that did not complete or the failed checks.
    """
    result = decide_result(steps, checks, aborted=aborted)
    return ResultDocument(
        run_id=run_id,
        recipe=RecipeRef(name=recipe_name, version=recipe_version, sha256=recipe_sha256),
        lot_id=lot_id,
        operator=operator,
        equipment_id=equipment_id,
        result=result,
        reason=reason or _default_reason(result, steps, checks),
        started_at=_time(started_at),
        ended_at=None if ended_at is None else _time(ended_at),
        steps=[
            StepEntry(
                type=o.type,
                name=o.name,
                result=_step_result(o.result),
                duration_s=(None if o.ended_t_s is None else max(0.0, o.ended_t_s - o.started_t_s)),
            )
            for o in steps
        ],
        conformance=[
            ConformanceEntry(
                check=c.check,
                ok=c.ok,
                value=_finite(c.value),
                limit=c.limit if isinstance(c.limit, str) else _finite(c.limit),
                detail=c.detail,
                condition=c.condition,
            )
            for c in checks
        ],
        metrics={k: _finite(v) for k, v in metrics.items()},
        alarms=[_alarm_entry(a) for a in alarms],
        software_version=software_version,
        config_hash=config_hash,
        sites=None if sites is None else [SiteEntry(**s) for s in sites],
    )


_STEP_RESULTS: Final[dict[str, StepResult]] = {
    "completed": "completed",
    "aborted": "aborted",
    "failed": "failed",
    "skipped": "skipped",
    # A step still "running" when the document is built means the run stopped mid-step.
    "running": "aborted",
}


def _time(ts: datetime | str) -> datetime:
    # Aware or not is the model's to judge: AwareDatetime refuses a naive time.
    return datetime.fromisoformat(ts) if isinstance(ts, str) else ts


def _alarm_entry(a: AlarmLike | Mapping[str, Any]) -> AlarmEntry:
    if isinstance(a, Mapping):
        return AlarmEntry.model_validate(dict(a))
    return AlarmEntry(t_s=a.t_s, code=a.code, severity=a.severity, message=a.message)


def _step_result(result: str) -> StepResult:
    try:
        return _STEP_RESULTS[result]
    except KeyError:
        raise ValueError(f"unknown step result {result!r}") from None
