"""The rig: one assembly of a working machine for every entry point.

``bonderd run``, ``serve``, ``tune``, ``emulate``'s plant, the virtual-time harness, the bench
and the tests all get their machine here, so none of them can drift from the others: the
clock rule, the connected devices, the monitor, the interlocks, the executor with its chip
loop and, on the simulated machine, the plant with the I/O coupler's dead-man armed, the
fault scenario's injector and the invariant referee (ADR 0136).

Assembly is synchronous and connects nothing; ``async with rig.running():`` connects the
devices last (connecting arms the real coupler's watchdog, which drops every output if the
first poll is late), starts the monitor and the interlocks and waits for the first snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from daemon.config import ConfigError, PanelGainsSection, Settings, config_hash
from daemon.machine.factory import close_all, connect_all, put_real_drivers, real_transports
from daemon.machine.monitor import Monitor
from daemon.recipe.model import AnyRecipe
from daemon.run import rig_sim
from daemon.run.executor import Executor
from daemon.run.rig_sim import (
    DIO_WATCHDOG_S,
    FaultInjector,
    FaultScenario,
    InvariantChecker,
    Plant,
    PlantParams,
    ScenarioError,
    load_scenario,
)
from daemon.safety.interlocks import Interlocks
from daemon.store.records import RunStore
from daemon.thermal.loop import ControllerFactory, ThermalModel
from daemon.thermal.panel_loop import zone_loop_for
from daemon.thermal.source import configured_model, configured_panel_gains
from drivers.clock import Clock, PacedClock, ScaledClock
from drivers.protocols import Machine

__all__ = [
    "DIO_WATCHDOG_S",
    "BuiltMachine",
    "FaultInjector",
    "FaultScenario",
    "InvariantChecker",
    "Plant",
    "PlantParams",
    "Rig",
    "ScenarioError",
    "assemble",
    "build_machine",
    "clock_for",
    "load_scenario",
    "simulated_plant",
]


def clock_for(*, sim: bool, speed: float) -> Clock:
    """The one clock rule (ADR 0002, 0071).

    Above real time the simulated machine runs on paced discrete-event time: a busy host
    slows the plant down instead of letting it run past a control loop that did not get to
    run. At speed 1, and always with real devices, the clock is the wall clock.
    """
    return PacedClock(speed) if sim and speed > 1 else ScaledClock(speed)


@dataclass
class BuiltMachine:
    machine: Machine
    plant: Plant | None  # the simulated plant, when the whole machine is simulated


def build_machine(
    settings: Settings,
    clock: Clock,
    *,
    sim: bool,
    seed: int = 0,
    params: PlantParams | None = None,
) -> BuiltMachine:
    """The machine the config asks for: simulated twins, real drivers, or a mix.

    On a machine that is simulated as a whole, the plant's coupler has its dead-man armed as
    the daemon arms the real one. A config without real devices and without ``sim`` is
    refused: on the controller PC it must not quietly run a simulation that an operator
    could take for the machine.
    """
    real = {} if sim else real_transports(settings)
    if not sim and not real:
        raise ConfigError(
            "devices: no real device is configured ([devices.<name>] driver = ...); "
            "use --sim to run the simulated machine"
        )
    plant = rig_sim.new_plant(clock, seed=seed, params=params)
    if not real:
        rig_sim.arm_dead_man(plant, clock)
        return BuiltMachine(rig_sim.twins(plant), plant)
    twins = rig_sim.twins(plant)
    return BuiltMachine(put_real_drivers(twins, clock, real, zones=plant.params.zones), None)


def simulated_plant(clock: Clock, *, seed: int = 0) -> rig_sim.Plant:
    """A plant alone, for the protocol emulators (their coupler has its own watchdog)."""
    return rig_sim.new_plant(clock, seed=seed)


@dataclass
class Rig:
    settings: Settings
    clock: Clock
    built: BuiltMachine
    store: RunStore
    monitor: Monitor
    interlocks: Interlocks
    executor: Executor
    injector: FaultInjector | None = None
    check_invariants: bool = True
    # The referee of the recipe last prepared (simulation only); None before the first.
    invariants: InvariantChecker | None = None
    # The loop ``assemble`` was given (tune's experiment, the bench's): kept for every recipe.
    own_factory: ControllerFactory | None = None
    # The zone-to-site gains a panel recipe's zone loop is built on (None: equal zones).
    panel_gains: PanelGainsSection | None = None

    @property
    def machine(self) -> Machine:
        return self.built.machine

    @property
    def plant(self) -> Plant | None:
        return self.built.plant

    def lamps_allowed(self) -> bool:
        """What the plant's referee holds the lamps to: enabled by a step, no trip latched."""
        ctx = self.executor.ctx
        return ctx is not None and ctx.lamps_enabled and self.interlocks.trip is None

    def prepare(self, recipe: AnyRecipe) -> None:
        """Before a run of ``recipe``: its lamp loop (a panel's zone loop if the configuration
        holds its gains); on the simulated machine, its panel and solder on the chuck and a
        fresh invariant referee for it (checked after every integration when asked for)."""
        if self.own_factory is None:
            self.executor.controller_factory = zone_loop_for(recipe, self.panel_gains)
        plant = self.plant
        if plant is None:
            return
        rig_sim.put_panel(plant, recipe)
        if self.injector is not None:
            self.injector.check_channels(plant.tc_channels)
        solder = recipe.materials.solder
        plant.set_solder(solder.solidus_c, solder.liquidus_c)
        first = self.invariants is None
        self.invariants = rig_sim.invariants_for(
            recipe, self.settings.limits.chip_max_c, self.lamps_allowed, self.clock.speed
        )
        if self.check_invariants and first:
            plant.add_observer(self._referee)

    def _referee(self, plant: Plant) -> None:
        if self.invariants is not None:
            self.invariants(plant)

    def violations(self, doc: dict[str, Any]) -> list[str]:
        """The plant invariants the run of ``doc`` broke (none on a real machine)."""
        if self.plant is None or self.invariants is None or not self.check_invariants:
            return []
        return self.invariants.finish(self.plant, doc)

    async def connect(self) -> None:
        await connect_all(self.machine)

    @contextlib.asynccontextmanager
    async def running(self, *, connect: bool = True) -> AsyncIterator[Rig]:
        """Devices connected, monitor and interlocks running, the first snapshot taken."""
        if connect:
            await self.connect()
        monitor_task = asyncio.create_task(self.monitor.run(), name="monitor")
        self.interlocks.start()
        try:
            await self.monitor.next()
            yield self
        finally:
            monitor_task.cancel()
            await asyncio.gather(monitor_task, return_exceptions=True)
            await self.interlocks.stop()
            await close_all(self.machine)

    def close(self) -> None:
        self.store.close()


def assemble(
    settings: Settings,
    *,
    sim: bool,
    speed: float = 1.0,
    seed: int = 0,
    clock: Clock | None = None,
    params: PlantParams | None = None,
    scenario: FaultScenario | None = None,
    thermal_model: ThermalModel | Literal["configured"] | None = "configured",
    controller_factory: ControllerFactory | None = None,
    panel_gains: PanelGainsSection | Literal["configured"] | None = "configured",
    check_invariants: bool = True,
    record_config_hash: str | None = None,
    on_machine: Callable[[Machine, Clock], None] | None = None,
    data_dir: Path | None = None,
) -> Rig:
    """Everything a run needs, wired once; nothing connected yet.

    ``clock`` overrides ``clock_for(sim, speed)`` (the harness's VirtualClock);
    ``thermal_model`` "configured" = the config's ``[thermal]`` (the shipped simulation model
    under ``sim`` when there is none), None = a machine without one (heating refuses unless
    ``controller_factory`` brings its own loop); ``controller_factory`` replaces the chip loop
    of every heating step (``bonderd tune``'s experiment, the bench's baseline PID);
    ``panel_gains`` "configured" = the config's ``[panel_gains]`` (the shipped simulation's
    under ``sim`` when there is none), None = no zone loop (a panel on equal zones);
    ``on_machine`` sees the machine before anything else holds it (a test's spy);
    ``scenario`` needs ``sim``. ``record_config_hash`` overrides the hash a run record carries.
    """
    if scenario is not None and not sim:
        raise ConfigError("faults: a fault scenario needs the simulated machine (--sim)")
    clock = clock if clock is not None else clock_for(sim=sim, speed=speed)
    built = build_machine(settings, clock, sim=sim, seed=seed, params=params)
    if on_machine is not None:
        on_machine(built.machine, clock)
    store = RunStore(data_dir if data_dir is not None else settings.data_dir)
    # Real devices are polled side by side (each on its own link); the simulated ones in
    # line, so that virtual time stays deterministic.
    monitor = Monitor(built.machine, clock, concurrent=built.plant is None)
    interlocks = Interlocks(built.machine, clock, monitor, settings.limits)
    model = configured_model(settings, sim=sim) if thermal_model == "configured" else thermal_model
    executor = Executor(
        built.machine,
        clock,
        monitor,
        store,
        settings.limits,
        equipment_id=settings.equipment_id,
        config_hash=config_hash(settings) if record_config_hash is None else record_config_hash,
        interlocks=interlocks,
        thermal_model=model,
        controller_factory=controller_factory,
    )
    rig = Rig(settings, clock, built, store, monitor, interlocks, executor)
    rig.own_factory = controller_factory
    rig.panel_gains = (
        configured_panel_gains(settings, sim=sim) if panel_gains == "configured" else panel_gains
    )
    rig.check_invariants = check_invariants
    if scenario is not None and built.plant is not None:
        rig.injector = injector = FaultInjector(scenario, built.plant, clock)

        def on_event(event: str, payload: dict[str, Any]) -> None:
            if event == "RunStarted":
                injector.run_started()
            elif event == "StepStarted":
                injector.step_started(payload["name"])
            elif event == "RunCompleted":
                # A fault due after the run has ended belongs to no run: it must not fire
                # into the idle machine (nor be counted as tested).
                injector.cancel_pending()

        executor.subscribe(on_event)
    return rig
