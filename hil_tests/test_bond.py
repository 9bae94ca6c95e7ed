"""The full vacuum-film bond through the real drivers, the emulators in their own process.

As `bonderd run --config <emulated>` does it: monitor, interlocks and executor in this
process on the real drivers; `bonderd emulate --recipe` in another, both at SPEED.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path

import pytest

from daemon.config import Limits, load_settings
from daemon.executor import Executor
from daemon.interlocks import Interlocks
from daemon.machine_factory import build, close_all, connect_all
from daemon.monitor import Monitor
from daemon.recipe.load import load_recipe_file
from daemon.records import RunStore
from drivers.clock import ScaledClock
from hil_tests.emulator_process import emulator_process

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "sac305-polyimide.toml"
# Simulated seconds per wall second, in both processes. The recipe takes ~350 s of machine
# time; every device timeout is wall time, so a host stall of 0.5 s costs SPEED x 0.5 s of
# process time: 2 keeps that inside what the interlocks tolerate on a loaded 2-core host.
SPEED = 2.0


@pytest.mark.timeout(540)
async def test_vacuum_film_bond_completes_with_every_check_ok(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if request.config.getoption("--hil-config") is not None:
        pytest.skip("the bond on the real machine is run by an operator, not by pytest")
    started = time.monotonic()
    # The daemon runs as a service with a raised priority on the controller PC (see the
    # report: systemd Nice=); on a shared CI host the test process gets the same, for this
    # test only, so a neighbour's job cannot silence it past the WAGO watchdog (1 s).
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, -5)
    try:
        await _bond(tmp_path, started)
    finally:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)


async def _bond(tmp_path: Path, started: float) -> None:
    async with emulator_process(tmp_path, SPEED, RECIPE) as emu:
        settings = load_settings(emu.config, required=True)
        clock = ScaledClock(SPEED)
        built = build(settings, clock, sim=False)
        machine = built.machine
        await connect_all(machine)
        loaded = load_recipe_file(RECIPE, Limits())
        store = RunStore(tmp_path / "data")
        monitor = Monitor(machine, clock, concurrent=True)
        interlocks = Interlocks(machine, clock, monitor, settings.limits)
        executor = Executor(machine, clock, monitor, store, settings.limits, interlocks=interlocks)
        task = asyncio.create_task(monitor.run(), name="monitor")
        interlocks.start()
        try:
            await monitor.next()
            doc = await executor.run(loaded, lot_id="HIL")
        finally:
            await interlocks.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await close_all(machine)
            store.close()
    print(f"bond through the real drivers: {time.monotonic() - started:.0f} s wall")
    failed = [c for c in doc["conformance"] if not c["ok"]]
    assert doc["result"] == "completed", (doc["reason"], failed)
    assert failed == [], failed
    checks = {c["check"] for c in doc["conformance"]}
    assert {"o2_ppm", "peak_in_window", "time_above_liquidus", "component_below_tg"} <= checks
    # Every device answered through its real driver and said what it is where it can.
    assert "Zaber" in doc["devices"]["zstage"] and "OmniCure" in doc["devices"]["uv"]
