"""Build the Machine the config asks for: the simulated plant, or (later) real drivers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from daemon.config import ConfigError, Settings
from drivers.clock import Clock
from drivers.errors import DeviceError
from drivers.protocols import Machine
from drivers.sim.devices import build_sim_machine
from drivers.sim.plant import Plant

CONNECT_TIMEOUT_S = 5.0


@dataclass
class BuiltMachine:
    machine: Machine
    plant: Plant | None  # the simulated plant, when the machine is simulated


def build(settings: Settings, clock: Clock, *, sim: bool, seed: int = 0) -> BuiltMachine:
    real = {name: d.driver for name, d in settings.devices.items() if d.driver != "sim"}
    if real and not sim:
        listed = ", ".join(f"{n} ({d})" for n, d in sorted(real.items()))
        raise ConfigError(
            f"devices: real drivers are not available in this version for: {listed}; "
            'use --sim or driver = "sim"'
        )
    plant = Plant(clock, seed=seed)
    return BuiltMachine(build_sim_machine(plant), plant)


async def connect_all(machine: Machine) -> None:
    """Connect every device in parallel; report every failure together."""
    devices = machine.devices()
    results = await asyncio.gather(
        *(d.connect(CONNECT_TIMEOUT_S) for d in devices), return_exceptions=True
    )
    failures = [
        f"{d.name}: {r}"
        for d, r in zip(devices, results, strict=True)
        if isinstance(r, BaseException)
    ]
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, DeviceError | TimeoutError):
            raise r
    if failures:
        raise DeviceError("machine", "devices failed to connect: " + "; ".join(failures))


async def close_all(machine: Machine) -> None:
    await asyncio.gather(*(d.close() for d in machine.devices()), return_exceptions=True)
