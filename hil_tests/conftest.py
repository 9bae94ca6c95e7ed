"""HIL fixtures: the real drivers against the emulators (default) or the machine (opt-in).

``--hil-config FILE`` points the suite at a real machine's configuration; tests that need
the emulators (fault injection into the plant, watchdog observed on the plant) are then
skipped, never faked.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.config import Settings, load_settings
from daemon.machine.factory import close_all, connect_all
from daemon.run.rig import BuiltMachine, build_machine
from drivers.clock import ScaledClock
from drivers.emulators.runner import EmulatorSet
from drivers.sim.plant import Plant
from hil_tests.watch import Watched, watching
from tests.leaks import fail_on_leaked_tasks

SPEED = (
    5.0  # simulated s per wall s: the 1 s monitor-staleness interlock must survive a loaded CI host
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--hil-config",
        type=Path,
        default=None,
        help="run the HIL suite against the machine this bonderd config describes",
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # First in the list = set up first, torn down last: the leak check runs after the
    # emulators and drivers of `rig` and `machine` have been stopped.
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            names = [n for n in item.fixturenames if n != "_no_leaked_tasks"]
            item.fixturenames[:] = ["_no_leaked_tasks", *names]


@pytest.fixture
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """A HIL test that leaves an asyncio task running fails, as in tests/ (DESIGN.md)."""
    yield
    await fail_on_leaked_tasks()


@dataclass
class Rig:
    clock: ScaledClock
    settings: Settings
    emulators: EmulatorSet | None  # None against a real machine
    plant: Plant | None


@pytest.fixture
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    clock = ScaledClock(SPEED)
    cfg: Path | None = request.config.getoption("--hil-config")
    if cfg is not None:
        yield Rig(ScaledClock(1.0), load_settings(cfg, required=True), None, None)
        return
    plant = Plant(clock)
    emus = EmulatorSet(plant)
    await emus.start()
    try:
        path = tmp_path / "emulated.toml"
        path.write_text(f'data_dir = "{tmp_path}"\n\n' + emus.config_toml())
        yield Rig(clock, load_settings(path, required=True), emus, plant)
    finally:
        await emus.stop()


def emulated(rig: Rig) -> EmulatorSet:
    if rig.emulators is None:
        pytest.skip("needs the emulators (fault injection into the plant)")
    return rig.emulators


@pytest.fixture
async def machine(rig: Rig) -> AsyncIterator[BuiltMachine]:
    built = build_machine(rig.settings, rig.clock, sim=False)
    await connect_all(built.machine)
    try:
        yield built
    finally:
        await close_all(built.machine)


@pytest.fixture
async def watched(rig: Rig, machine: BuiltMachine) -> AsyncIterator[Watched]:
    """Monitor + interlocks running over the real drivers, every snapshot kept (watch.py)."""
    emulated(rig)
    async with watching(rig.clock, machine) as w:
        yield w
