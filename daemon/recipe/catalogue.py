"""The step catalogue: what each step type means to the machine, declared once.

The recipe model (daemon/recipe/model.py) gives a step its fields; this table gives its type
the properties the rest of the daemon asks about: whether the lamps heat in it, whether an
operator may hold it, which devices it needs beyond its kind's, and which interlocks guard
it. Read by the executor (holds, the heat phase), the interlock rules (daemon/safety/rules.py),
conformance (daemon/judge/reflow.py) and validation (daemon/recipe/rules*.py), each through
``step_types``/``STEP_TYPES``; ``tests/test_catalogue.py`` checks that every step type of the
model has an entry and that the properties agree with each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Guard(StrEnum):
    """Interlock rules that apply only in some steps (daemon/safety/rules.py, docs/safety.md)."""

    # Before any heat the thermocouples sit on parts in thermal contact near the chuck: a
    # channel far from the others is drifting or has come off its part (tc_disagree).
    TC_AGREE = "tc_agree"
    # The working-space atmosphere is guarded: bad or stale O2 holds the lamps off, and trips
    # once they are on in a HOT step (o2_high, o2_stale).
    ATMOSPHERE = "atmosphere"
    # The lamps may be on, or solder is molten or solidifying under the film: a pressure rise
    # is a leak or a torn film and trips (vacuum_lost), and the run counts as heated.
    HOT = "hot"


@dataclass(frozen=True, slots=True)
class StepType:
    """The properties of one step type; the defaults are those of a step that does nothing hot."""

    # Conformance's heating phase: the lamps heat the chips (ramp limit, O2 during heating).
    heats: bool = False
    # Conformance's cooling phase: the solder cools at a bounded rate under the lamps' control.
    cools: bool = False
    # Takes the solder past liquidus: the executor's heat phase runs from this step's start to
    # the end of the next ``cools`` step, and no hold is granted in between.
    melts: bool = False
    # An operator hold may be asked for while the step runs (it takes effect when the step
    # ends). Not for a step whose interruption would spoil the part: solder molten, a profile
    # half-run, an exposure or a shot half-given, the leads half-bent. Those are aborted.
    holdable: bool = True
    # May appear more than once in a vacuum-film bond or bump reflow, whose process orders
    # (daemon/recipe/rules.py) otherwise allow one of each type; the lead-lift order has
    # rules of its own (daemon/recipe/rules_lead_lift.py).
    repeatable: bool = False
    # Lead lift: releases the lead tips from their support (must come before the lift).
    releases_tips: bool = False
    # Devices the step needs beyond its kind's (``KIND_DEVICES``): the interlocks trip when one
    # of them stops answering during the step, as for the kind's own.
    devices: frozenset[str] = frozenset()
    # The step-dependent interlock rules that run during the step.
    guards: frozenset[Guard] = frozenset()

    @property
    def hot(self) -> bool:
        return Guard.HOT in self.guards


_PRE_HEAT: Final = frozenset({Guard.TC_AGREE})
_HOT: Final = frozenset({Guard.HOT, Guard.ATMOSPHERE})

STEP_TYPES: Final[Mapping[str, StepType]] = MappingProxyType(
    {
        # ---- vacuum-film bond and bump reflow ----
        "chuck_stabilize": StepType(guards=_PRE_HEAT),
        "purge": StepType(repeatable=True, guards=_PRE_HEAT),
        "pump_down": StepType(guards=_PRE_HEAT | {Guard.ATMOSPHERE}),
        "reflow": StepType(heats=True, melts=True, holdable=False, guards=_HOT),
        "cool": StepType(cools=True, holdable=False, guards=_HOT),
        "securement_release": StepType(heats=True, holdable=False, guards=_HOT),
        "vent": StepType(),
        # ---- lead lift: the circulator heats, never the lamps; no working space ----
        "uv_release": StepType(holdable=False, releases_tips=True, devices=frozenset({"uv"})),
        "heat_release": StepType(holdable=False, releases_tips=True),
        # Once the support has been lifted the stage holds it (and the bent leads) to the end.
        "lead_lift": StepType(holdable=False, devices=frozenset({"zstage"})),
        "encapsulate": StepType(holdable=False, devices=frozenset({"dispenser", "zstage"})),
        "cure": StepType(holdable=False, devices=frozenset({"zstage"})),
        "support_release": StepType(holdable=False, devices=frozenset({"uv", "zstage"})),
    }
)

# Devices a recipe kind cannot do without, throughout its run: with the lamps enabled their
# first missed answer trips, otherwise a few in a row (daemon/safety/rules.py); the other
# devices only warn when they fall silent. A lead lift heats with the circulator, never the
# lamps, and has no working space to pump: the thermocouples, the circulator and the I/O
# (vacuum holds) are needed throughout, the stage, the UV source and the dispenser in the
# steps that use them (``StepType.devices``).
_LAMP_HEATED_DEVICES: Final = frozenset(
    {"tc", "gauge", "o2", "lamps", "pump", "valves", "chiller", "dio", "dio.outputs"}
)
KIND_DEVICES: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "vacuum_film_bond": _LAMP_HEATED_DEVICES,
        "bump_reflow": _LAMP_HEATED_DEVICES,
        "lead_lift": frozenset({"tc", "chiller", "dio", "dio.outputs"}),
    }
)


def step_types(has: Callable[[StepType], bool]) -> frozenset[str]:
    """The step types whose entry ``has`` the property, e.g. ``step_types(lambda s: s.heats)``."""
    return frozenset(name for name, s in STEP_TYPES.items() if has(s))


def holdable(type_: str | None) -> bool:
    """A hold may be asked for during a step of this type (None: between steps)."""
    entry = STEP_TYPES.get(type_) if type_ is not None else None
    return entry is None or entry.holdable
