"""What the interlock rules know of a run: its limits (the equipment's, tightened by the
recipe), which steps each step-dependent rule guards, and the live view of the executor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from daemon.config import Limits
from daemon.machine.motion import ZCommand
from daemon.recipe.catalogue import KIND_DEVICES, STEP_TYPES, Guard, step_types
from daemon.recipe.model import (
    AnyRecipe,
    BumpReflowRecipe,
    LeadLiftRecipe,
    LeadLiftStep,
    Reflow,
    atmosphere_of,
    component_max_c,
)

# A lead lift guards no atmosphere: its O2 rules never run (no pump-down, no heat step).
O2_PARTIAL_UNGUARDED_MBAR = 1013.0

# Which steps each step-dependent rule guards: the step catalogue (daemon/recipe/catalogue.py).
# Before any heat: the thermocouples sit on parts in thermal contact near the chuck.
PRE_HEAT_STEPS = step_types(lambda s: Guard.TC_AGREE in s.guards)
# The lamps on or molten/solidifying solder under the film.
HEAT_STEPS = step_types(lambda s: Guard.HOT in s.guards)
# The atmosphere: from the pump-down before heating through the end of cooling.
O2_STEPS = step_types(lambda s: Guard.ATMOSPHERE in s.guards)
# Devices each step needs beyond its kind's (KIND_DEVICES).
STEP_DEVICES = {name: s.devices for name, s in STEP_TYPES.items() if s.devices}


@dataclass(frozen=True, slots=True)
class RunLimits:
    """The limits of one run: the equipment's, tightened by the recipe."""

    chip_max_c: float
    component_max_c: float  # Tg − margin
    component_suspend_c: float
    chuck_max_c: float
    o2_max_ppm: float
    o2_max_partial_mbar: float
    used_devices: frozenset[str]
    step_devices: dict[str, frozenset[str]] = field(default_factory=dict)
    z_force_max_n: float | None = None  # None: the equipment's limit
    # The process holds a vacuum while heating (the film presses the chips): a pressure rise
    # is a leak or a tear. A bump reflow heats in N2 at atmosphere, where air coming in shows
    # as O2 (o2_high), and the gauge's noise at 1000 mbar is itself a few mbar.
    vacuum_process: bool = True

    @classmethod
    def of(cls, recipe: AnyRecipe, limits: Limits) -> RunLimits:
        peaks = [s.peak_window_c.max for s in recipe.steps if isinstance(s, Reflow)]
        chip_max = limits.chip_max_c
        if peaks:
            chip_max = min(chip_max, max(peaks) + limits.chip_over_peak_c)
        part_limit = component_max_c(recipe)
        atm = atmosphere_of(recipe)
        if isinstance(recipe, LeadLiftRecipe):
            # No lamps: the chuck heats everything, and the joints made before must not remelt.
            forces = [s.force_limit_n for s in recipe.steps if isinstance(s, LeadLiftStep)]
            return cls(
                chip_max_c=min(chip_max, recipe.materials.solder.solidus_c),
                component_max_c=part_limit,
                component_suspend_c=part_limit - limits.component_approach_c,
                chuck_max_c=min(limits.chuck_heated_max_c, part_limit),
                o2_max_ppm=limits.o2_max_ppm_ceiling,
                o2_max_partial_mbar=O2_PARTIAL_UNGUARDED_MBAR,
                used_devices=KIND_DEVICES[recipe.kind],
                step_devices=STEP_DEVICES,
                z_force_max_n=min([limits.z_force_max_n, *forces]),
            )
        assert atm is not None
        return cls(
            chip_max_c=chip_max,
            component_max_c=part_limit,
            component_suspend_c=part_limit - limits.component_approach_c,
            chuck_max_c=min(limits.chuck_max_c, part_limit),
            o2_max_ppm=atm.o2_max_ppm,
            o2_max_partial_mbar=atm.o2_max_partial_mbar,
            used_devices=KIND_DEVICES[recipe.kind],
            step_devices=STEP_DEVICES,
            vacuum_process=not isinstance(recipe, BumpReflowRecipe),
        )

    def devices_for(self, step: str | None) -> frozenset[str]:
        extra = self.step_devices.get(step or "")
        return self.used_devices | extra if extra else self.used_devices


@dataclass
class RunView:
    """What the rules see of the run in progress, read live from the executor."""

    limits: RunLimits
    step_type: Callable[[], str | None]
    lamps_enabled: Callable[[], bool]
    # The lowest and highest lamp power commanded since a clock time (a reading's): ADR 0098.
    lamp_cmd_pct: Callable[[float], tuple[float, float]]
    # A UV exposure is under way: the shutter may be open.
    uv_exposing: Callable[[], bool] = lambda: False
    # The Z move last commanded (None: none outstanding, the stage may be anywhere).
    z_command: Callable[[], ZCommand | None] = lambda: None
    # A panel's zones with powers of their own: each zone's lower of its last two commands
    # (what was in force across the last reading). None: every zone had the same command.
    lamp_zone_cmds: Callable[[], tuple[float, ...] | None] = lambda: None
