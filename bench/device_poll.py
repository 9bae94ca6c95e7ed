"""Time of one full poll of every device over the real drivers, against the control period.

Runs the emulators in this process on a 1x clock and the monitor's concurrent read of every
device (`Monitor.read_once`), plus the thermal loop's lamp command (one GFX4 write and its
read-back), with the GFX4's RS-485 line modelled at ``--baud`` (ADR 0025). The Julabo (250 ms
between commands) and the Teledyne (a line every 2 s) are served from their caches, as in
the daemon. Usage: `.venv/bin/python -m bench.device_poll [--polls N] [--baud 38400]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from daemon.config import load_settings
from daemon.machine.factory import close_all, connect_all
from daemon.machine.monitor import CONTROL_PERIOD_S, Monitor
from daemon.run.rig import build_machine
from drivers.clock import ScaledClock
from drivers.emulators.runner import EmulatedMachine, EmulatorSet
from drivers.sim.plant import Plant

PERIOD_S = CONTROL_PERIOD_S


def _p95(xs: list[float]) -> float:
    return sorted(xs)[int(0.95 * (len(xs) - 1))]


async def measure(polls: int = 200, baud: int = 38400) -> dict[str, Any]:
    clock = ScaledClock(1.0)
    emus = EmulatorSet(Plant(clock), machine=EmulatedMachine(gfx4_baudrate=baud))
    await emus.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "emulated.toml"
            cfg.write_text(emus.config_toml())
            built = build_machine(load_settings(cfg, required=True), clock, sim=False)
        await connect_all(built.machine)
        monitor = Monitor(built.machine, clock, concurrent=True)
        times: list[float] = []  # lamp command + poll, one after the other (worst case)
        lamp_times: list[float] = []
        poll_times: list[float] = []
        errors = 0
        for _ in range(polls):
            t0 = time.perf_counter()
            await built.machine.lamps.set_power([0.0] * built.machine.lamps.zones, 0.5)
            t1 = time.perf_counter()
            snap = await monitor.read_once()
            t2 = time.perf_counter()
            lamp_times.append(t1 - t0)
            poll_times.append(t2 - t1)
            times.append(t2 - t0)
            errors += bool(snap.errors)
            await asyncio.sleep(max(0.0, PERIOD_S - times[-1]))
        await close_all(built.machine)
    finally:
        await emus.stop()
    times.sort()
    return {
        "device_poll_ms": round(statistics.median(poll_times) * 1e3, 2),
        "device_poll_p95_ms": round(_p95(poll_times) * 1e3, 2),
        "lamp_command_p95_ms": round(_p95(lamp_times) * 1e3, 2),
        "poll_and_lamp_command_p95_ms": round(_p95(times) * 1e3, 2),
        "poll_and_lamp_command_max_ms": round(times[-1] * 1e3, 2),
        "control_period_ms": round(PERIOD_S * 1e3, 1),
        "poll_and_lamp_command_p95_period_fraction": round(_p95(times) / PERIOD_S, 3),
        "gfx4_baud": baud,
        "polls": polls,
        "polls_with_device_error": errors,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--polls", type=int, default=200)
    ap.add_argument("--baud", type=int, default=38400)
    a = ap.parse_args()
    print(json.dumps(asyncio.run(measure(a.polls, a.baud)), indent=2))
