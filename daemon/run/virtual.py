"""Run recipes on the simulated machine in virtual time: the tests, the benchmarks and
``bonderd tune`` assemble the machine here, once.

Every run here has the interlocks running and the I/O coupler's watchdog armed; unless told
otherwise (the bench's timed runs), the plant invariants are checked after every integration
and a violation fails the run (AssertionError).
"""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from daemon.config import Limits
from daemon.machine.factory import close_all, connect_all
from daemon.machine.monitor import Monitor
from daemon.recipe.load import LoadedRecipe, load_recipe_file
from daemon.run.executor import Executor
from daemon.safety.interlocks import Interlocks
from daemon.store.records import RunStore
from daemon.thermal.loop import ControllerFactory, ThermalModel
from daemon.thermal.source import shipped_sim_model
from drivers.clock import VirtualClock
from drivers.protocols import OUT_LAMP_CONTACTOR, Machine
from drivers.sim.devices import build_sim_machine
from drivers.sim.faults import FaultInjector, FaultScenario
from drivers.sim.invariants import InvariantChecker
from drivers.sim.plant import Plant, PlantParams

DIO_WATCHDOG_S = 1.0  # the coupler's watchdog as the daemon arms it (docs/safety.md)

REPO = Path(__file__).resolve().parents[2]  # the source tree (tests, bench)
RECIPES = sorted((REPO / "recipes").glob("*.toml"))


def _kind(path: Path) -> object:
    return tomllib.loads(path.read_text(encoding="utf-8")).get("kind")


BOND_RECIPES = [p for p in RECIPES if _kind(p) == "vacuum_film_bond"]
REFLOW_RECIPES = [p for p in RECIPES if _kind(p) in ("vacuum_film_bond", "bump_reflow")]


@dataclass
class LampLog:
    """Every lamp-power and contactor command, with the clock time it was given."""

    power: list[tuple[float, float]] = field(default_factory=list)  # (t, max zone %)
    contactor: list[tuple[float, bool]] = field(default_factory=list)


def spy_lamps(machine: Machine, clock: VirtualClock) -> LampLog:
    log = LampLog()
    set_power, write_output = machine.lamps.set_power, machine.dio.write_output

    async def power(pct: Any, timeout: float = 1.0) -> None:
        await set_power(pct, timeout)
        log.power.append((clock.now(), max(pct)))

    async def output(name: str, on: bool, timeout: float = 1.0) -> None:
        await write_output(name, on, timeout)
        if name == OUT_LAMP_CONTACTOR:
            log.contactor.append((clock.now(), on))

    machine.lamps.set_power = power  # type: ignore[method-assign]
    machine.dio.write_output = output  # type: ignore[method-assign]
    return log


@dataclass
class SimRun:
    clock: VirtualClock
    plant: Plant
    machine: Machine
    monitor: Monitor
    executor: Executor
    interlocks: Interlocks
    invariants: InvariantChecker
    store: RunStore
    lamps: LampLog
    events: list[tuple[float, str, dict[str, Any]]]
    injector: FaultInjector | None = None  # the scenario's faults, and which of them fired


async def run_recipe(
    recipe: Path | LoadedRecipe,
    data_dir: Path,
    *,
    scenario: FaultScenario | None = None,
    limits: Limits | None = None,
    on_event: Callable[[SimRun, str, dict[str, Any]], None] | None = None,
    seed: int = 0,
    params: PlantParams | None = None,
    check_invariants: bool = True,
    thermal_model: ThermalModel | Literal["shipped", "none"] = "shipped",
    controller_factory: ControllerFactory | None = None,
) -> tuple[dict[str, Any], SimRun]:
    """Run one recipe on a fresh simulated machine in virtual time.

    ``thermal_model``: "shipped" = config/sim.toml's identified model, "none" = as a machine
    whose configuration has no model; ``controller_factory`` replaces the chip loop (the
    bench's baseline PID) and nothing else. ``check_invariants=False`` runs without the
    plant invariant checker (``SimRun.invariants`` then sees nothing): the interlocks still
    judge every snapshot, as on the machine.
    """
    model = shipped_sim_model() if thermal_model == "shipped" else thermal_model
    limits = limits or Limits()
    loaded = recipe if isinstance(recipe, LoadedRecipe) else load_recipe_file(recipe, limits)
    clock = VirtualClock()
    plant = Plant(clock, params, seed=seed)
    plant.arm_dio_watchdog(DIO_WATCHDOG_S)
    solder = loaded.recipe.materials.solder
    plant.set_solder(solder.solidus_c, solder.liquidus_c)
    machine = build_sim_machine(plant)
    lamps = spy_lamps(machine, clock)
    await connect_all(machine)
    store = RunStore(data_dir)
    monitor = Monitor(machine, clock, concurrent=False)
    interlocks = Interlocks(machine, clock, monitor, limits)
    executor = Executor(
        machine,
        clock,
        monitor,
        store,
        limits,
        interlocks=interlocks,
        thermal_model=None if model == "none" else model,
    )

    def lamps_allowed() -> bool:
        ctx = executor.ctx
        return ctx is not None and ctx.lamps_enabled and interlocks.trip is None

    invariants = InvariantChecker.for_recipe(loaded.recipe, limits.chip_max_c, lamps_allowed)
    if check_invariants:
        # After every integration: a test's extra referee, not part of the machine (the
        # bench's measured runs leave it out).
        plant.add_observer(invariants)
    injector = FaultInjector(scenario, plant, clock) if scenario is not None else None
    sim = SimRun(
        clock, plant, machine, monitor, executor, interlocks, invariants, store, lamps, [], injector
    )

    def listener(event: str, payload: dict[str, Any]) -> None:
        sim.events.append((clock.now(), event, payload))
        if event == "RunStarted" and executor.ctx is not None:
            executor.ctx.controller_factory = controller_factory
        if injector is not None and event == "RunStarted":
            injector.run_started()
        if injector is not None and event == "StepStarted":
            injector.step_started(payload["name"])
        if injector is not None and event == "RunCompleted":
            # A fault due after the run has ended belongs to no run: it must not fire into
            # the idle machine (nor be counted as tested).
            injector.cancel_pending()
        if on_event is not None:
            on_event(sim, event, payload)

    executor.subscribe(listener)
    monitor_task = asyncio.create_task(monitor.run(), name="monitor")
    interlocks.start()
    try:
        await monitor.next()
        doc = await executor.run(loaded, lot_id="TEST-LOT")
    finally:
        monitor_task.cancel()
        await asyncio.gather(monitor_task, return_exceptions=True)
        await interlocks.stop()
        await close_all(machine)
    if check_invariants:
        violations = invariants.finish(plant, doc)
        assert not violations, f"plant invariants violated: {violations}; reason {doc['reason']!r}"
    return doc, sim
