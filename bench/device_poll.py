"""Time of one full poll of every device over the real drivers, against the 50 ms period.

Runs the emulators in this process on a 1x clock and the monitor's concurrent read of every
device (`Monitor.read_once`), plus the thermal loop's lamp command (one GFX4 write and its
read-back), with the GFX4's RS-485 line modelled at ``--baud`` (ADR 0025). The Julabo (250 ms
between commands) and the Teledyne (a line every 2 s) are served from their caches, as in
the daemon. Usage: `.venv/bin/python -m bench.device_poll [--polls N] [--baud 19200]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from daemon.config import load_settings
from daemon.machine_factory import build, close_all, connect_all
from daemon.monitor import Monitor
from drivers.clock import ScaledClock
from drivers.emulators.runner import EmulatedMachine, EmulatorSet
from drivers.sim.plant import Plant

PERIOD_S = 0.05


async def main(polls: int, baud: int) -> None:
    clock = ScaledClock(1.0)
    emus = EmulatorSet(Plant(clock), machine=EmulatedMachine(gfx4_baudrate=baud))
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
            await built.machine.lamps.set_power([0.0] * built.machine.lamps.zones, 0.5)
            snap = await monitor.read_once()
            times.append(time.perf_counter() - t0)
            errors += bool(snap.errors)
            await asyncio.sleep(max(0.0, PERIOD_S - times[-1]))
        await close_all(built.machine)
    finally:
        await emus.stop()
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    print(
        f"lamp command + full poll of every device over the real drivers ({polls} polls, "
        f"emulators on localhost, GFX4 line at {baud} baud)"
    )
    print(
        f"  median {statistics.median(times) * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms, max {times[-1] * 1e3:.1f} ms"
    )
    print(
        f"  control period {PERIOD_S * 1e3:.0f} ms: p95 uses {p95 / PERIOD_S:.0%}; polls with a device error: {errors}"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--polls", type=int, default=200)
    ap.add_argument("--baud", type=int, default=38400)
    a = ap.parse_args()
    asyncio.run(main(a.polls, a.baud))
