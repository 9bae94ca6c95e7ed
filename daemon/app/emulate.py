"""`bonderd emulate`: the protocol emulators of the real devices on one simulated plant.

The emulators listen where the config's real drivers will look, and describe the machine
the config describes (the Zaber microstep, the load cell's and the UV source's calibration),
so `bonderd run --config X` and `bonderd emulate --config X` agree by construction. What lies
on the chuck is a property of the workpiece, not of the machine: ``--recipe FILE`` loads it
from the recipe that will run (its solder's solidus and liquidus), otherwise the plant keeps
its default SAC305.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from daemon.config import Settings
from daemon.recipe.load import load_recipe_file
from daemon.run.rig import simulated_plant
from drivers.clock import ScaledClock
from drivers.emulators.runner import DRIVERS, EmulatedMachine, EmulatorSet


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


def machine_of(settings: Settings) -> EmulatedMachine:
    """The commissioning values the config gives its real drivers, for the emulators."""
    defaults = EmulatedMachine()
    devices = settings.devices

    def value(device: str, key: str, default: float) -> float:
        dev = devices.get(device)
        if dev is None or dev.driver != DRIVERS.get(device) or key not in dev.transport:
            return default
        return float(dev.transport[key])

    return EmulatedMachine(
        um_per_microstep=value("zstage", "um_per_microstep", defaults.um_per_microstep),
        load_cell_full_scale_n=value(
            "zstage", "force_full_scale_n", defaults.load_cell_full_scale_n
        ),
        uv_irradiance_full_mw_cm2=value(
            "uv", "irradiance_full_mw_cm2", defaults.uv_irradiance_full_mw_cm2
        ),
        gfx4_baudrate=round(value("lamps", "baudrate", defaults.gfx4_baudrate)),
    )


async def run(settings: Settings, speed: float, recipe: Path | None = None) -> int:
    plant = simulated_plant(ScaledClock(speed))
    if recipe is not None:
        solder = load_recipe_file(recipe, settings.limits).recipe.materials.solder
        plant.set_solder(solder.solidus_c, solder.liquidus_c)
    host, ports = _ports(settings)
    emus = EmulatorSet(plant, host=host, ports=ports, machine=machine_of(settings))
    await emus.start()
    try:
        for dev, where in emus.where().items():
            print(f"{dev:14s} {DRIVERS[dev]:16s} {where}", flush=True)
        st = plant.state
        print(
            f"workpiece solder: solidus {st.solidus_c:g} °C, liquidus {st.liquidus_c:g} °C",
            flush=True,
        )
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
