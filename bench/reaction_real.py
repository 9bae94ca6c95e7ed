"""Interlock reaction time through the real drivers against the emulators (wall time, 1x).

The emulators run in this process on a real-time plant; the daemon side is the production
stack: real drivers over localhost TCP, the 20 Hz monitor, the interlock task. The machine is
held in a steady armed state (a run's limits armed, chiller and pump on, contactor closed,
SCR enabled, lamps at 0.3 %), then each fault is fired into the plant and timed:
  fault fired (the plant's state changed) → the GFX4 emulator holds 0 % on every zone, and
  → the lamp contactor is de-energized (commanded by the interlocks through the WAGO, or,
  when the coupler itself is silent, dropped by its own Modbus watchdog).
So the figures include the wait for the next snapshot (≤ one 50 ms period), the detection
window a rule needs, and the real drivers' write (GFX4 FC16 + read-back on the modelled
RS-485 line, WAGO FC5). p50 / p99 per fault kind.

    .venv/bin/python -m bench.reaction_real [--repeats N]

`measure(repeats) -> dict` returns {fault: {"lamps0_p50_s", "lamps0_p99_s",
"contactor_p50_s", "contactor_p99_s", "n"}} for the bench runner.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from daemon.config import Limits, load_settings
from daemon.machine.factory import close_all, connect_all
from daemon.machine.monitor import Monitor
from daemon.recipe.load import load_recipe_file
from daemon.run.rig import build_machine
from daemon.safety.interlocks import InterlockLatched, Interlocks
from daemon.safety.run_view import RunLimits, RunView
from drivers.clock import ScaledClock
from drivers.emulators.modbus_devices import Gfx4Context
from drivers.emulators.runner import EmulatorSet
from drivers.errors import DeviceError
from drivers.protocols import OUT_LAMP_CONTACTOR, OUT_SCR_ENABLE, Machine
from drivers.sim.plant import Plant, PlantFault

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "sac305-polyimide.toml"
LAMP_PCT = 0.3  # enough for a non-zero command (0.1 % units), too little to heat the chip
TIMEOUT_S = 5.0  # a fault not handled within this is reported as missed

# (label, plant fault): every one is something the interlocks must act on at once.
FAULTS: list[tuple[str, PlantFault]] = [
    ("dio estop", PlantFault("dio", "estop")),
    ("dio door_open", PlantFault("dio", "door_open")),
    ("tc.chip open", PlantFault("tc.chip", "open")),
    ("tc.chip no_response", PlantFault("tc.chip", "no_response")),
    ("gauge no_response", PlantFault("gauge", "no_response")),
    ("lamps stuck_on", PlantFault("lamps", "stuck_on", 40.0)),
    ("chiller fail", PlantFault("chiller", "fail")),
    ("pump fail", PlantFault("pump", "fail")),
    ("dio no_response", PlantFault("dio", "no_response")),  # the coupler's own watchdog
]


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def _until(cond: Callable[[], bool], limit: float) -> float | None:
    """Wall time at which ``cond`` first holds (polled every ms), or None."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return time.monotonic()
        await asyncio.sleep(0.001)
    return None


async def _ready(m: Machine, interlocks: Interlocks, plant: Plant) -> None:
    """Back to the armed steady state after a trial: faults repaired, trip reset, lamps on."""
    plant.clear_faults()
    deadline = time.monotonic() + 30.0
    while True:
        try:
            # A tripped pump or chiller stays stopped after the repair: start them first, the
            # reset is refused until their flow and status are back.
            await m.chiller.start(1.0)
            await m.pump.start(1.0)
            await interlocks.monitor.next()
            interlocks.reset()
            await m.dio.write_output(OUT_SCR_ENABLE, True, 0.5)
            await m.dio.write_output(OUT_LAMP_CONTACTOR, True, 0.5)
            await m.lamps.set_power([LAMP_PCT] * m.lamps.zones, 0.5)
            for _ in range(4):  # a few clean snapshots, no trip
                await interlocks.monitor.next()
            if interlocks.trip is None and plant.state.contactor_energized:
                return
        except (DeviceError, InterlockLatched):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"machine does not come back to the armed state: {interlocks.trip}")
        await asyncio.sleep(0.2)


async def measure(repeats: int = 5) -> dict[str, dict[str, float]]:
    clock = ScaledClock(1.0)
    plant = Plant(clock)
    emus = EmulatorSet(plant)
    await emus.start()
    results: dict[str, dict[str, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "emulated.toml"
            cfg.write_text(emus.config_toml())
            settings = load_settings(cfg, required=True)
        built = build_machine(settings, clock, sim=False)
        m = built.machine
        await connect_all(m)
        limits = Limits()
        recipe = load_recipe_file(RECIPE, limits).recipe
        monitor = Monitor(m, clock)
        interlocks = Interlocks(m, clock, monitor, limits)
        interlocks.arm(
            RunView(
                limits=RunLimits.of(recipe, limits),
                step_type=lambda: "chuck_stabilize",
                lamps_enabled=lambda: True,
                lamp_cmd_pct=lambda _t: (LAMP_PCT, LAMP_PCT),
            )
        )
        gfx = emus.modbus["lamps"].context
        assert isinstance(gfx, Gfx4Context)
        mon_task = asyncio.create_task(monitor.run(), name="monitor")
        interlocks.start()
        try:
            for label, fault in FAULTS:
                print(f"  {label} ...", file=sys.stderr, flush=True)
                lamps0: list[float] = []
                contactor: list[float] = []
                for _ in range(repeats):
                    await _ready(m, interlocks, plant)
                    fired: list[float] = []

                    def on_fire(_t: float, fired: list[float] = fired) -> None:
                        fired.append(time.monotonic())

                    plant.schedule_fault(fault, at_t=clock.now(), on_fire=on_fire)
                    plant.advance()
                    t_lamps = await _until(lambda: not any(gfx.manual), TIMEOUT_S)
                    t_open = await _until(lambda: not plant.state.contactor_energized, TIMEOUT_S)
                    if not fired:
                        raise RuntimeError(f"{label}: the plant did not take the fault")
                    # Not handled within TIMEOUT_S counts as infinite: it shows in the p99.
                    lamps0.append(math.inf if t_lamps is None else max(0.0, t_lamps - fired[0]))
                    contactor.append(math.inf if t_open is None else max(0.0, t_open - fired[0]))
                results[label] = {
                    "n": float(repeats),
                    "lamps0_p50_s": statistics.median(lamps0),
                    "lamps0_p99_s": _pct(lamps0, 0.99),
                    "contactor_p50_s": statistics.median(contactor),
                    "contactor_p99_s": _pct(contactor, 0.99),
                }
        finally:
            await interlocks.stop()
            mon_task.cancel()
            await asyncio.gather(mon_task, return_exceptions=True)
            plant.clear_faults()
            with contextlib.suppress(DeviceError):
                await m.lamps.set_power([0.0] * m.lamps.zones, 0.5)
            await close_all(m)
    finally:
        await emus.stop()
    return results


def main(repeats: int) -> None:
    res = asyncio.run(measure(repeats))
    print("interlock reaction through the real drivers (emulators in-process, 1x, wall time)")
    print(
        f"{'fault':22s} {'n':>3s} {'lamps0 p50':>11s} {'p99':>7s} {'contactor p50':>14s} {'p99':>7s}"
    )
    for label, r in res.items():
        print(
            f"{label:22s} {int(r['n']):3d} {r['lamps0_p50_s']:10.3f}s {r['lamps0_p99_s']:6.3f}s "
            f"{r['contactor_p50_s']:13.3f}s {r['contactor_p99_s']:6.3f}s"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    main(args.repeats)
