"""Run recipes on the simulated machine in virtual time: the harness of the tests and the
benchmarks, on the rig every entry point shares (daemon/run/rig.py).

Every run here has the interlocks running and the I/O coupler's watchdog armed; unless told
otherwise (the bench's timed runs), the plant invariants are checked after every integration
and a violation fails the run (AssertionError).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from daemon.config import Limits, PanelGainsSection, Settings
from daemon.machine.monitor import Monitor
from daemon.recipe.load import LoadedRecipe, load_recipe_file
from daemon.run.executor import Executor
from daemon.run.rig import (
    FaultInjector,
    FaultScenario,
    InvariantChecker,
    Plant,
    PlantParams,
    assemble,
)
from daemon.safety.interlocks import Interlocks
from daemon.store.records import RunStore
from daemon.thermal.loop import ControllerFactory, ThermalModel
from daemon.thermal.source import shipped_sim_model
from drivers.clock import VirtualClock
from drivers.protocols import OUT_LAMP_CONTACTOR, Machine

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
    panel_gains: PanelGainsSection | Literal["shipped", "none"] = "shipped",
) -> tuple[dict[str, Any], SimRun]:
    """Run one recipe on a fresh simulated machine in virtual time.

    ``thermal_model``: "shipped" = config/sim.toml's identified model, "none" = as a machine
    whose configuration has no model; ``controller_factory`` replaces the chip loop (the
    bench's baseline PID) and nothing else; ``panel_gains`` is the configuration's
    ``[panel_gains]`` (a panel recipe's zone loop): "shipped" = config/sim.toml's, "none" =
    a panel on equal zones. ``check_invariants=False`` runs without the
    plant invariant checker (``SimRun.invariants`` then sees nothing): the interlocks still
    judge every snapshot, as on the machine.
    """
    model = shipped_sim_model() if thermal_model == "shipped" else thermal_model
    limits = limits or Limits()
    loaded = recipe if isinstance(recipe, LoadedRecipe) else load_recipe_file(recipe, limits)
    clock = VirtualClock()
    spied: list[LampLog] = []
    # The harness's settings are the defaults and nothing of the environment; its records
    # carry no config hash (there is no config file).
    settings = Settings.model_construct(limits=limits, data_dir=data_dir)
    rig = assemble(
        settings,
        sim=True,
        seed=seed,
        clock=clock,
        params=params,
        scenario=scenario,
        thermal_model=None if model == "none" else model,
        controller_factory=controller_factory,
        panel_gains="configured"
        if panel_gains == "shipped"
        else None
        if panel_gains == "none"
        else panel_gains,
        check_invariants=check_invariants,
        record_config_hash="",
        on_machine=lambda machine, _clock: spied.append(spy_lamps(machine, clock)),
    )
    rig.prepare(loaded.recipe)
    plant, executor = rig.plant, rig.executor
    assert plant is not None and rig.invariants is not None
    sim = SimRun(
        clock,
        plant,
        rig.machine,
        rig.monitor,
        executor,
        rig.interlocks,
        rig.invariants,
        rig.store,
        spied[0],
        [],
        rig.injector,
    )

    def listener(event: str, payload: dict[str, Any]) -> None:
        sim.events.append((clock.now(), event, payload))
        if on_event is not None:
            on_event(sim, event, payload)

    executor.subscribe(listener)
    async with rig.running():
        doc = await executor.run(loaded, lot_id="TEST-LOT")
    violations = rig.violations(doc)
    assert not violations, f"plant invariants violated: {violations}; reason {doc['reason']!r}"
    return doc, sim
