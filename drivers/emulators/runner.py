"""Start every emulator on one plant; tell where each listens."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import structlog

from drivers.emulators.lift_devices import OmniCureEmulator, UltimusEmulator, ZaberEmulator
from drivers.emulators.modbus_devices import (
    SLOW_ANSWER_S,
    AdamContext,
    Gfx4Context,
    Misbehaviour,
    ModbusEmulator,
    WagoContext,
)
from drivers.emulators.rtu_pty import RtuPty
from drivers.emulators.serial_devices import (
    JulaboEmulator,
    NxdsEmulator,
    SerialEmulator,
    Teledyne3000TAEmulator,
    Tpg36xEmulator,
)
from drivers.sim.plant import Plant

log = structlog.get_logger(__name__)

# Device name in the config -> driver name; the order is the order `emulate` prints.
DRIVERS = {
    "dio": "wago-750-352",
    "valves": "wago-750-352",
    "thermocouples": "adam-6018",
    "lamps": "gfx4-ir",
    "gauge": "tpg36x",
    "pump": "nxds",
    "chiller": "julabo",
    "o2": "teledyne-3000ta",
    "zstage": "zaber-ascii",
    "uv": "omnicure-s2000",
    "dispenser": "ultimus",
}


@dataclass(frozen=True)
class EmulatedMachine:
    """What the emulated devices are, where the config must agree (commissioning values)."""

    um_per_microstep: float = 0.1905  # the Zaber stage's microstep
    load_cell_full_scale_n: float = 10.0  # load-cell amplifier: 20 mA at this force
    uv_irradiance_full_mw_cm2: float = 200.0  # OmniCure at iris 100 %, at the work plane
    gfx4_baudrate: int = 19200  # the lamp controllers' RS-485 line

    def transport_extras(self, device: str) -> dict[str, float | int | str]:
        if device == "zstage":
            return {
                "um_per_microstep": self.um_per_microstep,
                "force_full_scale_n": self.load_cell_full_scale_n,
            }
        if device == "uv":
            return {"irradiance_full_mw_cm2": self.uv_irradiance_full_mw_cm2}
        return {}


class EmulatorSet:
    def __init__(
        self,
        plant: Plant,
        host: str = "127.0.0.1",
        ports: dict[str, int] | None = None,
        machine: EmulatedMachine | None = None,
    ) -> None:
        ports = ports or {}
        self.plant = plant
        self.machine = machine = machine or EmulatedMachine()
        self.wago = WagoContext(
            plant, Misbehaviour(), load_cell_full_scale_n=machine.load_cell_full_scale_n
        )
        self.modbus: dict[str, ModbusEmulator] = {
            "dio": ModbusEmulator("dio", self.wago, host=host, port=ports.get("dio", 0)),
            "thermocouples": ModbusEmulator(
                "thermocouples",
                AdamContext(plant, Misbehaviour()),
                host=host,
                port=ports.get("thermocouples", 0),
            ),
            "lamps": ModbusEmulator(
                "lamps",
                Gfx4Context(plant, Misbehaviour(), baudrate=machine.gfx4_baudrate),
                framing="rtu",
                host=host,
                port=ports.get("lamps", 0),
            ),
        }
        self.serial: dict[str, SerialEmulator] = {
            "gauge": Tpg36xEmulator(plant, host=host, port=ports.get("gauge", 0)),
            "pump": NxdsEmulator(plant, host=host, port=ports.get("pump", 0)),
            "chiller": JulaboEmulator(plant, host=host, port=ports.get("chiller", 0)),
            "o2": Teledyne3000TAEmulator(plant, host=host, port=ports.get("o2", 0)),
            "zstage": ZaberEmulator(
                plant,
                um_per_microstep=machine.um_per_microstep,
                host=host,
                port=ports.get("zstage", 0),
            ),
            "uv": OmniCureEmulator(
                plant,
                irradiance_full_mw_cm2=machine.uv_irradiance_full_mw_cm2,
                host=host,
                port=ports.get("uv", 0),
            ),
            "dispenser": UltimusEmulator(plant, host=host, port=ports.get("dispenser", 0)),
        }
        self._watch: asyncio.Task[None] | None = None
        self._stalls: asyncio.Task[None] | None = None
        # The GFX4 also on a pty, as plain Modbus RTU, for masters that only speak serial RTU.
        self.gfx4_pty = RtuPty(self.modbus["lamps"].context, node=1)

    def emulator(self, device: str) -> ModbusEmulator | SerialEmulator:
        if device == "valves":
            device = "dio"
        return self.modbus.get(device) or self.serial[device]

    async def start(self) -> None:
        for m in self.modbus.values():
            await m.start()
        for s in self.serial.values():
            await s.start()
        await self.gfx4_pty.start()
        self._watch = asyncio.create_task(self.wago.watch(), name="wago-watchdog")
        self._stalls = asyncio.create_task(_loop_stalls(), name="emulator-loop-stalls")

    async def stop(self) -> None:
        for task in (self._watch, self._stalls):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._watch = self._stalls = None
        await self.gfx4_pty.stop()
        for m in self.modbus.values():
            await m.stop()
        for s in self.serial.values():
            await s.stop()

    def where(self) -> dict[str, str]:
        out = {dev: self.emulator(dev).where for dev in DRIVERS}
        out["lamps"] += f"; Modbus RTU on {self.gfx4_pty.path}"
        return out

    def config_toml(self) -> str:
        """The `[devices.*]` tables that point the daemon's real drivers at these emulators."""
        out: list[str] = []
        for dev, driver in DRIVERS.items():
            em = self.emulator(dev)
            out.append(f"[devices.{dev}]")
            out.append(f'driver = "{driver}"')
            if isinstance(em, ModbusEmulator):
                keys: dict[str, float | int | str] = {"host": em.host, "port": em.port}
            else:
                keys = {"url": f"socket://{em.host}:{em.port}"}
            keys.update(self.machine.transport_extras(dev))
            inline = ", ".join(
                f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in keys.items()
            )
            out.append(f"transport = {{ {inline} }}")
            out.append("")
        return "\n".join(out)


async def _loop_stalls(tick_s: float = 0.02) -> None:
    """Log every pause of the emulators' event loop longer than ``SLOW_ANSWER_S``.

    Every emulated device answers from this one loop: a pause is every device slow at once
    (a starved process, a long plant integration), which the daemon's side cannot tell from
    devices that are slow on their own.
    """
    last = time.monotonic()
    while True:
        await asyncio.sleep(tick_s)
        now = time.monotonic()
        if now - last - tick_s > SLOW_ANSWER_S:
            log.warning("emulator_loop_stall", stall_s=round(now - last - tick_s, 3))
        last = now
