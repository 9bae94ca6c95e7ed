"""The full vacuum-film bond through the real drivers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from daemon.config import Limits
from daemon.executor import Executor
from daemon.machine_factory import BuiltMachine
from daemon.monitor import Monitor
from daemon.recipe.load import load_recipe_file
from daemon.records import RunStore
from hil_tests.conftest import Rig

REPO = Path(__file__).resolve().parent.parent


# The emulators and the daemon share one event loop on a 2-core machine; under load from
# other processes a Modbus exchange can miss its 0.5 s timeout and the bond aborts on
# `device_lost`. Until the emulators run in their own process (`bonderd emulate`), this test
# is opt-in so CI is not flaky: BONDERD_HIL_BOND=1 ./dev test hil_tests/test_bond.py
@pytest.mark.skipif(
    os.environ.get("BONDERD_HIL_BOND") != "1",
    reason="full bond through emulators in-process is load-sensitive; opt in with BONDERD_HIL_BOND=1",
)
async def test_vacuum_film_bond_completes_with_every_check_ok(
    rig: Rig, machine: BuiltMachine, tmp_path: Path
) -> None:
    loaded = load_recipe_file(REPO / "recipes" / "sac305-polyimide.toml", Limits())
    if rig.plant is not None:
        solder = loaded.recipe.materials.solder
        rig.plant.set_solder(solder.solidus_c, solder.liquidus_c)
    store = RunStore(tmp_path / "data")
    monitor = Monitor(machine.machine, rig.clock, concurrent=True)
    executor = Executor(machine.machine, rig.clock, monitor, store, Limits())
    task = asyncio.create_task(monitor.run(), name="monitor")
    try:
        await monitor.next()
        doc = await executor.run(loaded, lot_id="HIL")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        store.close()
    failed = [c for c in doc["conformance"] if not c["ok"]]
    assert doc["result"] == "completed", (doc["reason"], failed)
    assert failed == [], failed
    checks = {c["check"] for c in doc["conformance"]}
    assert {"o2_ppm", "peak_in_window", "time_above_liquidus", "component_below_tg"} <= checks
