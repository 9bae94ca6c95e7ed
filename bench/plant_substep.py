"""Accuracy of the plant's integration substep (docs/adr/0121), open loop.

Every actuator call of a shipped recipe's run (seed 0) is recorded with its instant and
replayed on plants with other ``PlantParams.dt_s``: the same commands for all, so only the
integration differs. Printed: the largest deviation of each state from the replay at the
reference substep, over every instant of the run.

    .venv/bin/python -m bench.plant_substep [--ref 0.001] [dt ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import structlog

from daemon.run import rig_sim
from daemon.run import virtual as virtual_run
from drivers.clock import VirtualClock
from drivers.sim.plant import Plant, PlantParams

# Every Plant method through which the daemon's drivers act on the machine.
_ACTIONS = (
    "set_solder", "set_lamp_power", "set_output", "dio_contact", "arm_dio_watchdog",
    "set_valve", "pump_start", "pump_stop", "chiller_start", "chiller_stop",
    "chiller_set_setpoint", "z_home", "z_move", "z_stop", "uv_set_irradiance", "uv_shutter",
    "dispenser_set_pressure", "dispense", "dispense_stop",
)  # fmt: skip
STATES = ("chip_c", "component_c", "chuck_c", "pressure_mbar", "o2_ppm", "z_um", "cure")

Call = tuple[float, str, tuple[Any, ...], dict[str, Any]]


def _state(p: Plant) -> tuple[float, ...]:
    s = p.state
    return (s.chip_c, s.component_c, s.chuck_c, s.pressure_mbar, s.o2_ppm, s.z_um, p._cure)


def record(recipe: Path) -> list[Call]:
    """The plant calls of one run, outermost only, with their clock instants."""
    log: list[Call] = []
    depth = [0]

    class Recording(Plant):
        pass

    for name in _ACTIONS:
        method = getattr(Plant, name)

        def wrapped(self: Plant, *a: Any, _m: Any = method, _n: str = name, **k: Any) -> Any:
            if depth[0] == 0:
                log.append((self.clock.now(), _n, a, k))
            depth[0] += 1
            try:
                return _m(self, *a, **k)
            finally:
                depth[0] -= 1

        setattr(Recording, name, wrapped)
    rig_sim.Plant = Recording  # type: ignore[misc]  # the rig builds from it
    try:
        with tempfile.TemporaryDirectory() as d:
            asyncio.run(virtual_run.run_recipe(recipe, Path(d), check_invariants=False))
    finally:
        rig_sim.Plant = Plant  # type: ignore[misc]
    return log


def replay(log: list[Call], dt_s: float) -> dict[float, tuple[float, ...]]:
    """The plant's state just before each instant's calls, integrated at ``dt_s``."""
    clock = VirtualClock()
    plant = Plant(clock, PlantParams(dt_s=dt_s))
    states: dict[float, tuple[float, ...]] = {}
    for t, name, a, k in log:
        if t not in states:
            clock._now = t
            plant.advance()
            states[t] = _state(plant)
        # A call the run's plant refused (a start against a fault) is refused here too.
        with contextlib.suppress(RuntimeError, ValueError):
            getattr(plant, name)(*a, **k)
    return states


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", type=float, default=0.001)
    ap.add_argument("dt", type=float, nargs="*", default=[0.01, 0.025, 0.05])
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    for recipe in sorted(Path("recipes").glob("*.toml")):
        log = record(recipe)
        ref = replay(log, args.ref)
        print(f"{recipe.name}: {len(log)} calls, {len(ref)} instants, reference dt {args.ref}")
        for dt in args.dt:
            other = replay(log, dt)
            worst = [max(abs(other[t][i] - ref[t][i]) for t in ref) for i in range(len(STATES))]
            rel_p = max(abs(other[t][3] - ref[t][3]) / ref[t][3] for t in ref)
            cells = " ".join(f"{n}={w:.2g}" for n, w in zip(STATES, worst, strict=True))
            print(f"  dt {dt}: {cells} (pressure {rel_p:.3%} relative)")


if __name__ == "__main__":
    main()
