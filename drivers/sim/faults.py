"""Fault scenarios for the simulated plant: the file model, its loader and the injector.

A scenario is a TOML file of ``[[fault]]`` tables (CONTRACT.md, "Fault scenario file"). Each
fault fires either ``at_s`` seconds after the run starts or when the step named ``at_step``
starts, plus ``after_s``. Which kinds a device accepts, and what ``value`` means, is the
plant's table (``drivers.sim.plant.fault_table.FAULT_KINDS``):

=================  ==========================================  =============================
device             kinds                                       value
=================  ==========================================  =============================
tc.<channel>       open, stuck, drift, no_response             drift: °C/s (required);
                                                               stuck: frozen °C (optional)
                   (<channel>: chip, component, chuck, or a
                   panel's instrumented site site_<n>, checked
                   against the recipe when it is prepared)
tc                 no_response
gauge              fail, stuck, no_response                    stuck: frozen mbar (optional)
chamber            leak, tear                                  leak: mbar·L/s (required, > 0)
film               tear
film.site_<n>      uneven (the film presses a panel's site     uneven: share of the full
                   with only part of the pressure)             pressure, (0, 1] (required)
chiller            fail, no_response
pump               fail (trip), no_response
lamps, lamps.z<n>  stuck_on, fail (dead lamp), no_response     stuck_on: % (default 100)
o2                 fail (not measuring), stuck, no_response    stuck: frozen ppm (optional)
dio                estop, door_open, no_response
zstage             fail (drive fault), stall (following error:
                   busy but not moving), no_response
uv                 fail (lamp out: no output, shutter
                   closed), no_response
dispenser          fail, no_response
chuck_vacuum,      fail (the hold loses its vacuum; its switch
support_vacuum     opens)
valves             no_response
=================  ==========================================  =============================

``stall``, ``chuck_vacuum`` and ``support_vacuum`` extend the contract's list of kinds and
devices (docs/adr/0050); the file format is unchanged.

Kinds with no value in this table refuse a non-zero one (``value = 0``, the default, is
"no value", as in the contract's example), so a scenario cannot suggest an effect the
simulation does not have.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from drivers.clock import Clock
from drivers.sim.plant import TC_CHANNELS, Plant, PlantParams
from drivers.sim.plant.fault_table import (
    FAULT_KINDS,
    FAULT_VALUE_OPTIONAL,
    FAULT_VALUE_REQUIRED,
    PlantFault,
    fault_device_key,
)

log = structlog.get_logger(__name__)

FaultKind = Literal[
    "open",
    "stuck",
    "drift",
    "no_response",
    "leak",
    "tear",
    "fail",
    "stuck_on",
    "estop",
    "door_open",
    "stall",
    "uneven",
]

_DEFAULT_ZONES = PlantParams().zones


class ScenarioError(Exception):
    """A fault scenario that cannot be used. ``errors`` holds (field path, reason) pairs."""

    def __init__(self, file: str, errors: list[tuple[str, str]]) -> None:
        self.file = file
        self.errors = errors
        lines = [
            f"{file}: {loc}: {reason}" if loc else f"{file}: {reason}" for loc, reason in errors
        ]
        super().__init__("\n".join(lines))


_SITE_TC = re.compile(r"tc\.site_[0-9]{1,3}")
_SITE_FILM = re.compile(r"film\.site_[0-9]{1,3}")


def _channels(device: str) -> tuple[str, ...]:
    """The thermocouple channels a fault may name: the machine's, and a panel site's
    (whether the run's panel has that site instrumented is checked when the recipe is
    prepared: ``site_channels_missing``)."""
    return (*TC_CHANNELS, device[3:]) if _SITE_TC.fullmatch(device) else TC_CHANNELS


def site_channels_missing(scenario: FaultScenario, channels: Sequence[str]) -> list[str]:
    """The scenario's thermocouple faults on a channel the machine does not have now."""
    have = set(channels)
    return [
        f"fault[{i}].device: {f.device!r}: no thermocouple on that channel in this run "
        f"(channels: {', '.join(channels)})"
        for i, f in enumerate(scenario.fault)
        if f.device.startswith("tc.") and f.device[3:] not in have
    ]


def _rule_error(field: str, reason: str) -> PydanticCustomError:
    # ``field`` travels in the context so the loader can report e.g. ``fault[1].kind`` for a
    # rule that only a model-level validator can check.
    return PydanticCustomError("fault_rule", "{reason}", {"reason": reason, "field": field})


class Fault(BaseModel):
    """One fault of a scenario."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)

    at_step: Annotated[str, Field(min_length=1)] | None = None
    at_s: Annotated[float, Field(ge=0.0)] | None = None
    after_s: Annotated[float, Field(ge=0.0)] = 0.0
    device: str
    kind: FaultKind
    value: float = 0.0

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if fault_device_key(device, _DEFAULT_ZONES, _channels(device)) is None:
            known = ", ".join(
                [f"tc.{c}" for c in TC_CHANNELS]
                + ["tc.site_<n> (a panel's instrumented site)"]
                + [k for k in FAULT_KINDS if "<" not in k]
                + [f"lamps.z1..z{_DEFAULT_ZONES}"]
            )
            raise ValueError(f"unknown device {device!r} (known: {known})")
        return device

    @model_validator(mode="after")
    def _consistent(self) -> Fault:
        if (self.at_step is None) == (self.at_s is None):
            raise _rule_error("at_s", "give exactly one of at_step or at_s")
        key = fault_device_key(self.device, _DEFAULT_ZONES, _channels(self.device))
        assert key is not None  # the device validator has run
        allowed = FAULT_KINDS[key]
        if self.kind not in allowed:
            raise _rule_error(
                "kind",
                f"kind {self.kind!r} does not apply to device {self.device!r} "
                f"(it accepts: {', '.join(sorted(allowed))})",
            )
        given = self.value_given
        if self.kind in FAULT_VALUE_REQUIRED and not given:
            unit = "°C/s" if self.kind == "drift" else "mbar·L/s"
            raise _rule_error("value", f"kind {self.kind!r} needs a value ({unit})")
        if self.value != 0.0 and self.kind not in FAULT_VALUE_REQUIRED | FAULT_VALUE_OPTIONAL:
            raise _rule_error("value", f"kind {self.kind!r} takes no value (got {self.value:g})")
        if self.kind == "drift" and self.value == 0.0:
            raise _rule_error("value", "a drift of 0 °C/s is no fault")
        if self.kind == "leak" and not self.value > 0.0:
            raise _rule_error("value", "a leak rate must be > 0 mbar·L/s")
        if self.kind == "stuck_on" and given and not 0.0 < self.value <= 100.0:
            raise _rule_error("value", "stuck_on output must be in (0, 100] %")
        if self.kind == "stuck" and given and self.device in ("gauge", "o2") and self.value < 0:
            raise _rule_error("value", "a stuck pressure or O2 reading cannot be negative")
        return self

    @property
    def value_given(self) -> bool:
        return "value" in self.model_fields_set

    def to_plant_fault(self) -> PlantFault:
        takes_value = self.kind in FAULT_VALUE_REQUIRED | FAULT_VALUE_OPTIONAL
        value = self.value if self.value_given and takes_value else None
        return PlantFault(self.device, self.kind, value)

    def describe(self) -> str:
        when = f"step {self.at_step!r}" if self.at_step is not None else f"t={self.at_s:g} s"
        delay = f" + {self.after_s:g} s" if self.after_s else ""
        val = f" value={self.value:g}" if self.to_plant_fault().value is not None else ""
        return f"{self.device} {self.kind}{val} at {when}{delay}"


class FaultScenario(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)

    fault: list[Fault] = Field(default_factory=list)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _errors_of(exc: ValidationError) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        loc = _loc(err["loc"])
        ctx: dict[str, Any] = err.get("ctx") or {}
        if err["type"] == "fault_rule":
            loc = f"{loc}.{ctx['field']}"
        reason = err["msg"].removeprefix("Value error, ")
        inp = err.get("input")
        if err["type"] not in ("fault_rule", "value_error", "missing") and not isinstance(
            inp, dict | list
        ):
            reason += f" (got {inp!r})"
        errors.append((loc, reason))
    return errors


def parse_scenario(text: str, file: str = "<scenario>") -> FaultScenario:
    """Validate a scenario given as TOML text; errors name ``file``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(file, [("", f"invalid TOML: {exc}")]) from None
    try:
        return FaultScenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(file, _errors_of(exc)) from None


def load_scenario(path: str | os.PathLike[str]) -> FaultScenario:
    """Read and validate a fault scenario file. Raises ScenarioError naming file, field, reason."""
    file = os.fspath(path)
    try:
        raw = Path(file).read_bytes()
    except OSError as exc:
        raise ScenarioError(file, [("", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            file, [("", f"not valid UTF-8 (byte {exc.start}: {exc.reason})")]
        ) from None
    return parse_scenario(text, file)


@dataclass(frozen=True, slots=True)
class FiredFault:
    """A fault that took effect: ``t`` is clock time, ``run_t_s`` seconds since run start."""

    index: int  # position in the scenario, as in ``fault[index]``
    fault: Fault
    t: float
    run_t_s: float | None


class FaultInjector:
    """Schedules a scenario's faults into the plant as the run and its steps start.

    Each fault fires at most once. A fault naming a step that never starts never fires;
    ``cancel_pending()`` drops what has not fired yet (at the end of a run).
    """

    def __init__(self, scenario: FaultScenario, plant: Plant, clock: Clock) -> None:
        errors: list[tuple[str, str]] = []
        for i, f in enumerate(scenario.fault):
            if _SITE_TC.fullmatch(f.device) or _SITE_FILM.fullmatch(f.device):
                continue  # a panel site's: checked when a recipe is prepared (check_channels)
            try:
                plant.check_fault(f.to_plant_fault())
            except ValueError as exc:
                errors.append((f"fault[{i}].device", f"not applicable to this plant: {exc}"))
        if errors:
            raise ScenarioError("<scenario>", errors)
        self._scenario = scenario
        self._plant = plant
        self._clock = clock
        self._run_t0: float | None = None
        self._handles: dict[int, int] = {}  # fault index -> plant schedule handle
        self._fired: list[FiredFault] = []

    @property
    def scenario(self) -> FaultScenario:
        return self._scenario

    @property
    def fired(self) -> list[FiredFault]:
        return list(self._fired)

    @property
    def pending(self) -> list[int]:
        """Indices of faults scheduled but not fired yet."""
        done = {f.index for f in self._fired}
        return sorted(i for i in self._handles if i not in done)

    def check_channels(self, channels: Sequence[str]) -> None:
        """Raise ScenarioError if a thermocouple fault names a channel the machine does not
        have for this run (a panel site the recipe does not instrument), or a film fault a
        site the chuck does not hold."""
        missing = site_channels_missing(self._scenario, channels)
        for i, f in enumerate(self._scenario.fault):
            if _SITE_FILM.fullmatch(f.device):
                try:
                    self._plant.check_fault(f.to_plant_fault())
                except ValueError as exc:
                    missing.append(f"fault[{i}].device: {exc}")
        if missing:
            raise ScenarioError(
                "<scenario>", [(m.split(": ", 1)[0], m.split(": ", 1)[1]) for m in missing]
            )

    def run_started(self) -> None:
        """Schedule every ``at_s`` fault relative to now."""
        self._run_t0 = self._clock.now()
        for i, f in enumerate(self._scenario.fault):
            if f.at_s is not None:
                self._schedule(i, f, self._run_t0 + f.at_s + f.after_s)

    def step_started(self, step_name: str) -> None:
        """Schedule the faults of this step relative to now."""
        now = self._clock.now()
        for i, f in enumerate(self._scenario.fault):
            if f.at_step == step_name:
                self._schedule(i, f, now + f.after_s)

    def cancel_pending(self) -> None:
        for i in self.pending:
            self._plant.cancel_fault(self._handles[i])

    def _schedule(self, index: int, fault: Fault, at_t: float) -> None:
        if index in self._handles:
            return

        def on_fire(t: float) -> None:
            run_t = None if self._run_t0 is None else t - self._run_t0
            self._fired.append(FiredFault(index, fault, t, run_t))
            log.info("fault_fired", index=index, fault=fault.describe(), t=round(t, 3))

        self._handles[index] = self._plant.schedule_fault(fault, at_t, on_fire)


__all__ = [
    "Fault",
    "FaultInjector",
    "FaultKind",
    "FaultScenario",
    "FiredFault",
    "ScenarioError",
    "load_scenario",
    "parse_scenario",
]
