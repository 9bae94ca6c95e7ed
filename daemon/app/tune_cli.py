"""``bonderd tune``: the identification run on the machine (or --sim), then the fit.

The run is assembled exactly as ``bonderd run`` assembles one (monitor, interlocks, executor,
safe state, the I/O coupler's watchdog, and on the simulated machine the plant invariants);
only the reflow step's lamp loop is the identification experiment (daemon/thermal/tune.py).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

from daemon.config import ConfigError, load_settings
from daemon.machine.factory import build, close_all, connect_all
from daemon.machine.monitor import Monitor
from daemon.recipe.load import parse_recipe
from daemon.run.executor import Executor
from daemon.safety.interlocks import Interlocks
from daemon.store.records import RunStore
from daemon.thermal.fit import TuneError, identify
from daemon.thermal.loop import ChipLoop, ThermalModel
from daemon.thermal.tune import IdentificationLoop, experiment_recipe, replace_section, section_toml
from drivers.clock import Clock, PacedClock, ScaledClock
from drivers.sim.invariants import InvariantChecker, grace_for

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
DEFAULT_CONFIG = Path("/etc/bonderd/bonderd.toml")
DIO_WATCHDOG_S = 1.0


def parse_solder(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        raise ConfigError(f"--solder: expected SOLIDUS:LIQUIDUS in °C, got {text!r}") from None
    if not lo <= hi:
        raise ConfigError(f"--solder: solidus {lo:g} °C above liquidus {hi:g} °C")
    return lo, hi


def write_model(path: Path, section: str) -> None:
    """Replace or add the ``[thermal]`` table, every other byte kept; atomic (rename)."""
    original = path.read_text(encoding="utf-8") if path.exists() else ""
    updated = replace_section(original, section)
    tmp = path.with_name(f".{path.name}.tune-{os.getpid()}")
    tmp.write_text(updated, encoding="utf-8")
    try:
        load_settings(tmp, required=True)  # never leave a config the daemon cannot read
    except ConfigError:
        tmp.unlink()
        raise
    os.replace(tmp, path)


async def identification_run(
    args: argparse.Namespace, melt: tuple[float, float]
) -> tuple[dict[str, Any], IdentificationLoop]:
    path = args.config
    settings = load_settings(path or DEFAULT_CONFIG, required=path is not None)
    if args.data_dir is not None:
        settings = settings.model_copy(update={"data_dir": Path(args.data_dir)})
    clock: Clock = PacedClock(args.speed) if args.sim else ScaledClock(args.speed)
    built = build(settings, clock, sim=args.sim, seed=args.seed)
    loop = IdentificationLoop(melt)
    loaded = parse_recipe(
        experiment_recipe(melt, loop.duration_s()).encode(), "bonderd tune", settings.limits
    )
    if built.plant is not None:
        built.plant.set_solder(*melt)
        built.plant.arm_dio_watchdog(DIO_WATCHDOG_S * clock.speed)
    machine = built.machine
    await connect_all(machine)
    store = RunStore(settings.data_dir)
    monitor = Monitor(machine, clock, concurrent=built.plant is None)
    interlocks = Interlocks(machine, clock, monitor, settings.limits)
    executor = Executor(
        machine,
        clock,
        monitor,
        store,
        settings.limits,
        interlocks=interlocks,
        equipment_id=settings.equipment_id,
    )

    def factory(_model: ThermalModel | None, _melt: tuple[float, float] | None) -> ChipLoop:
        return loop

    def on_event(event: str, payload: dict[str, Any]) -> None:
        if event == "RunStarted" and executor.ctx is not None:
            executor.ctx.controller_factory = factory

    executor.subscribe(on_event)
    invariants: InvariantChecker | None = None
    if built.plant is not None:

        def lamps_allowed() -> bool:
            ctx = executor.ctx
            return ctx is not None and ctx.lamps_enabled and interlocks.trip is None

        invariants = InvariantChecker.for_recipe(
            loaded.recipe,
            settings.limits.chip_max_c,
            lamps_allowed,
            grace_s=grace_for(clock.speed),
        )
        built.plant.add_observer(invariants)
    monitor_task = asyncio.create_task(monitor.run(), name="monitor")
    interlocks.start()
    try:
        await monitor.next()
        doc = await executor.run(loaded, lot_id="TUNE", operator="bonderd tune")
    finally:
        monitor_task.cancel()
        await asyncio.gather(monitor_task, return_exceptions=True)
        await interlocks.stop()
        await close_all(machine)
        store.close()
    if invariants is not None and built.plant is not None:
        violations = invariants.finish(built.plant, doc)
        if violations:
            raise TuneError(f"simulation invariants violated: {violations}")
    return doc, loop


async def run(args: argparse.Namespace) -> int:
    melt = parse_solder(args.solder)
    if args.write and args.config is None:
        print(
            "bonderd tune: --write needs --config FILE (the file to store it in)", file=sys.stderr
        )
        return EXIT_INVALID
    doc, loop = await identification_run(args, melt)
    if not loop.done or doc["result"] == "aborted":
        print(
            f"bonderd tune: the identification run did not finish: {doc['reason']}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    try:
        model = identify(loop.record, melt)
    except TuneError as exc:
        print(f"bonderd tune: {exc}", file=sys.stderr)
        return EXIT_FAILED
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    how = "bonderd tune --sim" if args.sim else "bonderd tune"
    section = section_toml(model, f"{stamp} {how} (run {doc['run_id']})")
    sys.stdout.write(section)
    if args.write:
        write_model(args.config, section)
        print(f"bonderd tune: [thermal] written to {args.config}", file=sys.stderr)
    return EXIT_OK
