"""The rig's simulation branch: the one place the daemon reaches into ``drivers.sim``.

The simulated plant, its twins of every device, the I/O coupler's dead-man armed as the
daemon arms the real one, the fault scenario's injector and the invariant referee that
judges the plant's true state. The import contracts (``.importlinter``) let no other runtime
module import ``drivers.sim``: a real machine can never end up wired to a simulated part by
an import made for something else.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from daemon.recipe.model import (
    AnyRecipe,
    BumpReflowRecipe,
    VacuumFilmBondRecipe,
    component_hard_c,
)
from drivers.clock import Clock
from drivers.protocols import Machine
from drivers.sim.devices import build_sim_machine
from drivers.sim.faults import FaultInjector, FaultScenario, ScenarioError, load_scenario
from drivers.sim.invariants import InvariantChecker, grace_for
from drivers.sim.plant import PanelLayout, Plant, PlantParams
from drivers.sim.plant.calibrate import calibrated, chuck_calibrated
from drivers.sim.plant.disturb import Disturbance, disturbance, disturbed

__all__ = [
    "DIO_WATCHDOG_S",
    "Disturbance",
    "FaultInjector",
    "FaultScenario",
    "InvariantChecker",
    "Plant",
    "PlantParams",
    "ScenarioError",
    "calibrated",
    "chuck_calibrated",
    "disturbance",
    "disturbed",
    "invariants_for",
    "load_scenario",
    "new_plant",
    "put_panel",
    "twins",
]

# The I/O coupler's output watchdog as the daemon arms it (docs/safety.md): every output
# drops when the daemon has not talked to the coupler for this long.
DIO_WATCHDOG_S: Final = 1.0


def new_plant(clock: Clock, *, seed: int = 0, params: PlantParams | None = None) -> Plant:
    return Plant(clock, params, seed=seed)


def put_panel(plant: Plant, recipe: AnyRecipe) -> None:
    """Put the recipe's panel on the simulated chuck (none, or 1 × 1: the single chip)."""
    panel = recipe.panel if isinstance(recipe, VacuumFilmBondRecipe) else None
    layout = (
        None
        if panel is None
        else PanelLayout(
            rows=panel.rows,
            cols=panel.cols,
            pitch_mm=panel.pitch_mm,
            chip_mm=panel.chip_mm,
            solder_mg=tuple(panel.solder_mg or ()),
            instrumented=panel.instrumented_sites,
        )
    )
    current = plant.panel
    if (current.layout if current is not None else None) != layout:
        plant.set_panel(layout)


def arm_dead_man(plant: Plant, clock: Clock) -> None:
    """Arm the simulated coupler's watchdog for ``DIO_WATCHDOG_S`` of *wall* time.

    A hang is a wall-time event: at --speed 100 the coupler waits 100 simulated seconds, not
    a 10 ms scheduling hiccup. Under virtual time (infinite speed) a wall second has no
    meaning and the simulated second is used.
    """
    speed = clock.speed
    plant.arm_dio_watchdog(DIO_WATCHDOG_S * speed if math.isfinite(speed) else DIO_WATCHDOG_S)


def twins(plant: Plant) -> Machine:
    """Every device of the bonder simulated on ``plant`` (not yet connected)."""
    return build_sim_machine(plant)


def invariants_for(
    recipe: AnyRecipe, chip_max_c: float, lamps_allowed: Callable[[], bool], speed: float
) -> InvariantChecker:
    """The referee of one run of ``recipe``, with the grace the clock's speed needs."""
    return InvariantChecker(
        chip_max_c,
        component_hard_c(recipe),
        lamps_allowed,
        grace_s=grace_for(speed),
        n2_atmosphere=isinstance(recipe, BumpReflowRecipe),
    )
