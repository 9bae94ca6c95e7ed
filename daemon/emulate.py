"""`bonderd emulate`: the protocol emulators of the real devices on one simulated plant."""

from __future__ import annotations

import asyncio
import signal
import sys

from daemon.config import Settings
from drivers.clock import ScaledClock
from drivers.emulators.runner import DRIVERS, EmulatorSet
from drivers.sim.plant import Plant


def _ports(settings: Settings) -> tuple[str, dict[str, int]]:
    """Listen where the config's real drivers will look (host and port of each transport)."""
    host = "127.0.0.1"
    ports: dict[str, int] = {}
    for name, dev in settings.devices.items():
        if dev.driver != DRIVERS.get(name):
            continue
        t = dev.transport
        if "url" in t and str(t["url"]).startswith("socket://"):
            h, _, p = str(t["url"]).removeprefix("socket://").rpartition(":")
            host, ports[name] = h or host, int(p)
        elif "port" in t:
            host = str(t.get("host", host))
            ports["dio" if name == "valves" else name] = int(t["port"])
    return host, ports


async def run(settings: Settings, speed: float) -> int:
    clock = ScaledClock(speed)
    host, ports = _ports(settings)
    emus = EmulatorSet(Plant(clock), host=host, ports=ports)
    await emus.start()
    try:
        for dev, where in emus.where().items():
            print(f"{dev:14s} {DRIVERS[dev]:16s} {where}", flush=True)
        print(f"plant at {speed:g}x real time; Ctrl-C to stop", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await emus.stop()
    print("emulators stopped", file=sys.stderr)
    return 0
