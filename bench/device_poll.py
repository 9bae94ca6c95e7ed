"""Time of one full poll of every device over the real drivers, against the control period.

Runs the emulators in this process on a 1x clock and the monitor's concurrent read of every
device (`Monitor.read_once`). Usage: `.venv/bin/python -m bench.device_poll [--polls N]`.
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
from daemon.machine_factory import build, close_all, connect_all
from daemon.monitor import CONTROL_PERIOD_S, Monitor
from drivers.clock import ScaledClock
from drivers.emulators.runner import EmulatorSet
from drivers.sim.plant import Plant

PERIOD_S = CONTROL_PERIOD_S


async def measure(polls: int = 200) -> dict[str, Any]:
    clock = ScaledClock(1.0)
    emus = EmulatorSet(Plant(clock))
    await emus.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "emulated.toml"
            cfg.write_text(emus.config_toml())
            built = build(load_settings(cfg, required=True), clock, sim=False)
        await connect_all(built.machine)
        monitor = Monitor(built.machine, clock, concurrent=True)
        times: list[float] = []
        errors = 0
        for _ in range(polls):
            t0 = time.perf_counter()
            snap = await monitor.read_once()
            times.append(time.perf_counter() - t0)
            errors += bool(snap.errors)
            await asyncio.sleep(max(0.0, PERIOD_S - times[-1]))
        await close_all(built.machine)
    finally:
        await emus.stop()
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
    return {
        "device_poll_ms": round(statistics.median(times) * 1e3, 2),
        "device_poll_p95_ms": round(p95 * 1e3, 2),
        "device_poll_p99_ms": round(p99 * 1e3, 2),
        "device_poll_max_ms": round(times[-1] * 1e3, 2),
        "control_period_ms": round(PERIOD_S * 1e3, 1),
        "device_poll_p95_period_fraction": round(p95 / PERIOD_S, 3),
        "polls": polls,
        "polls_with_device_error": errors,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--polls", type=int, default=200)
    print(json.dumps(asyncio.run(measure(ap.parse_args().polls)), indent=2))
