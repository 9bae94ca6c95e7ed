"""The monitor and the interlocks over the real drivers, watched (HIL timing tests).

``watched``: monitor + interlocks running against the emulators, every snapshot kept with
the wall time it was published and the wall time its reads began, and the run rules of a
reflow with the lamps enabled (where a used device trips at its first missed reading) to
evaluate them against. Shared by test_lost_frames.py and test_cancelled_requests.py (the fixture is conftest's).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from daemon.config import Limits
from daemon.machine.monitor import Monitor, Snapshot
from daemon.recipe.load import load_recipe_file
from daemon.run.rig import BuiltMachine
from daemon.safety.findings import Action
from daemon.safety.interlocks import Interlocks
from daemon.safety.rules import RuleEngine
from daemon.safety.run_view import RunLimits, RunView
from drivers.clock import Clock
from drivers.modbus import ModbusBus

LIMITS = Limits()
RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "sac305-polyimide.toml"


@dataclass
class Watched:
    monitor: Monitor
    interlocks: Interlocks
    reflow: RuleEngine  # the run rules of a reflow with the lamps enabled
    snaps: list[tuple[float, Snapshot]]  # (wall time published, snapshot)
    started: dict[float, float]  # snapshot clock t -> wall time its reads started


@contextlib.asynccontextmanager
async def watching(clock: Clock, machine: BuiltMachine) -> AsyncIterator[Watched]:
    """The ``watched`` fixture (conftest.py)."""
    monitor = Monitor(machine.machine, clock, concurrent=True)
    started: dict[float, float] = {}
    read_once = monitor.read_once

    async def timed_read_once() -> Snapshot:
        wall = time.monotonic()
        snap = await read_once()
        started[snap.t] = wall
        return snap

    monitor.read_once = timed_read_once  # type: ignore[method-assign]
    # No run armed on the real interlocks: only the staleness watch and the always-on rules
    # act (the emulated chamber is at atmosphere, which a reflow's rules would trip on).
    interlocks = Interlocks(machine.machine, clock, monitor, LIMITS)
    run_limits = RunLimits.of(load_recipe_file(RECIPE, LIMITS).recipe, LIMITS)
    reflow = RuleEngine(LIMITS)
    reflow.arm(RunView(run_limits, lambda: "reflow", lambda: True, lambda _t: (0.0, 0.0)))
    snaps: list[tuple[float, Snapshot]] = []

    async def collect() -> None:
        while True:
            snap = await monitor.next()
            snaps.append((time.monotonic(), snap))

    tasks = [asyncio.create_task(monitor.run(), name="monitor")]
    tasks.append(asyncio.create_task(collect(), name="collect"))
    interlocks.start()
    try:
        await monitor.next()
        await monitor.next()
        yield Watched(monitor, interlocks, reflow, snaps, started)
    finally:
        await interlocks.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def device_trips(w: Watched, snaps: list[Snapshot]) -> list[str]:
    return [
        f.message
        for s in snaps
        for f in w.reflow.evaluate(s)
        if f.code == "device_lost" and f.action is Action.TRIP
    ]


def worst_age_s(w: Watched, since: float) -> float:
    """Longest wall time the interlocks' staleness watch saw without a fresh snapshot."""
    pubs = [(wall, s) for wall, s in w.snaps if wall >= since]
    worst = 0.0
    for (_, prev), (wall, _) in itertools.pairwise(pubs):
        worst = max(worst, wall - w.started[prev.t])
    return worst


def modbus_bus(machine: BuiltMachine, device: str) -> ModbusBus:
    m = machine.machine
    drv = {"dio": m.dio, "thermocouples": m.thermocouples, "lamps": m.lamps}[device]
    bus = getattr(drv, "_bus", None) or drv._c.bus  # type: ignore[attr-defined]
    assert isinstance(bus, ModbusBus)
    return bus
