"""Build the Machine the config asks for: simulated twins, real drivers, or a mix.

Each real driver has a validated transport model (unknown keys, wrong types and out-of-range
values are ConfigErrors naming ``devices.<name>.transport.<key>``). Devices on one physical
link (the WAGO coupler serves both ``dio`` and ``valves``) share one bus object, hence one
lock. Devices left ``sim`` (or not configured) are simulated twins on a local plant.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daemon.config import ConfigError, Settings, describe_pydantic_error, toml_key_path
from drivers.adam.driver import Adam6018
from drivers.clock import Clock
from drivers.edwards.driver import NxdsPump
from drivers.errors import DeviceError
from drivers.gefran.driver import Gfx4Lamps
from drivers.julabo.driver import MIN_GAP_S, JulaboChiller
from drivers.modbus import ModbusBus
from drivers.pfeiffer.driver import Tpg36x
from drivers.protocols import Machine
from drivers.serial_line import SerialLine
from drivers.sim.devices import build_sim_machine
from drivers.sim.plant import TC_CHANNELS, Plant
from drivers.teledyne.driver import Teledyne3000TA
from drivers.wago.driver import WagoCoupler, WagoDigitalIO, WagoValves

CONNECT_TIMEOUT_S = 5.0

Port = Annotated[int, Field(ge=1, le=65535)]
Timeout = Annotated[float, Field(gt=0.0, le=5.0)]


class _Transport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModbusTcpTransport(_Transport):
    host: Annotated[str, Field(min_length=1)]
    port: Port = 502
    device_id: Annotated[int, Field(ge=0, le=255)] = 1
    timeout_s: Timeout = 0.25
    retries: Annotated[int, Field(ge=0, le=5)] = 1


class WagoTransport(ModbusTcpTransport):
    # The coupler drops its outputs this long after the daemon's last request.
    watchdog_s: Annotated[float, Field(ge=0.1, le=60.0)] = 1.0


class AdamTransport(ModbusTcpTransport):
    range_min_c: float = 0.0
    range_max_c: float = 1370.0


class Gfx4Transport(_Transport):
    host: Annotated[str, Field(min_length=1)]
    port: Port = 502
    framing: Literal["rtu", "tcp"] = "rtu"
    base_node: Annotated[int, Field(ge=1, le=244)] = 1
    timeout_s: Timeout = 0.25
    retries: Annotated[int, Field(ge=0, le=5)] = 1


class SerialTransport(_Transport):
    url: Annotated[str, Field(min_length=1)]  # /dev/ttyS0, socket://host:port, rfc2217://...
    baudrate: Annotated[int, Field(ge=300, le=115200)] = 9600


class TpgTransport(SerialTransport):
    channel: Literal[1, 2] = 1


class JulaboTransport(SerialTransport):
    baudrate: Annotated[int, Field(ge=300, le=115200)] = 4800


class TeledyneTransport(SerialTransport):
    baudrate: Annotated[int, Field(ge=300, le=115200)] = 2400
    period_s: Annotated[float, Field(gt=0.0, le=60.0)] = 2.0


# driver name -> (transport model, device names it can serve)
DRIVERS: dict[str, tuple[type[_Transport], frozenset[str]]] = {
    "wago-750-352": (WagoTransport, frozenset({"dio", "valves"})),
    "adam-6018": (AdamTransport, frozenset({"thermocouples"})),
    "gfx4-ir": (Gfx4Transport, frozenset({"lamps"})),
    "tpg36x": (TpgTransport, frozenset({"gauge"})),
    "nxds": (SerialTransport, frozenset({"pump"})),
    "julabo": (JulaboTransport, frozenset({"chiller"})),
    "teledyne-3000ta": (TeledyneTransport, frozenset({"o2"})),
}


@dataclass
class BuiltMachine:
    machine: Machine
    plant: Plant | None  # the simulated plant, when the whole machine is simulated


def _transports(settings: Settings) -> dict[str, tuple[str, _Transport]]:
    problems: list[str] = []
    out: dict[str, tuple[str, _Transport]] = {}
    for name, dev in sorted(settings.devices.items()):
        if dev.driver == "sim":
            continue
        entry = DRIVERS.get(dev.driver)
        if entry is None:
            problems.append(
                f"devices.{name}.driver: unknown driver {dev.driver!r} "
                f"(known: sim, {', '.join(sorted(DRIVERS))})"
            )
            continue
        model, serves = entry
        if name not in serves:
            problems.append(
                f"devices.{name}.driver: {dev.driver!r} drives {', '.join(sorted(serves))}, not {name!r}"
            )
            continue
        try:
            out[name] = (dev.driver, model.model_validate(dev.transport))
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                path = toml_key_path(("devices", name, "transport", *err["loc"]))
                problems.append(f"{path}: {describe_pydantic_error(err)}")
    if problems:
        raise ConfigError(problems)
    return out


def build(settings: Settings, clock: Clock, *, sim: bool, seed: int = 0) -> BuiltMachine:
    real = {} if sim else _transports(settings)
    if not sim and not real:
        # On the controller PC a config without devices must not quietly run a simulation
        # that an operator could take for the machine.
        raise ConfigError(
            "devices: no real device is configured ([devices.<name>] driver = ...); "
            "use --sim to run the simulated machine"
        )
    plant = Plant(clock, seed=seed)
    sim_machine = build_sim_machine(plant)
    if not real:
        return BuiltMachine(sim_machine, plant)
    m = sim_machine
    buses: dict[tuple[str, int, str], ModbusBus] = {}

    def bus(t: ModbusTcpTransport | Gfx4Transport, framing: Literal["rtu", "tcp"]) -> ModbusBus:
        key = (t.host, t.port, framing)
        if key not in buses:
            buses[key] = ModbusBus(
                f"{t.host}:{t.port}",
                t.host,
                t.port,
                framing=framing,
                timeout_s=t.timeout_s,
                retries=t.retries,
            )
        return buses[key]

    coupler: WagoCoupler | None = None
    for name, (driver, t) in real.items():
        if isinstance(t, WagoTransport):
            if coupler is None:
                coupler = WagoCoupler(bus(t, "tcp"), device_id=t.device_id, watchdog_s=t.watchdog_s)
            if name == "dio":
                m.dio = WagoDigitalIO(coupler)
            else:
                m.valves = WagoValves(coupler)
        elif isinstance(t, AdamTransport):
            m.thermocouples = Adam6018(
                bus(t, "tcp"),
                clock,
                {ch: i for i, ch in enumerate(TC_CHANNELS)},
                device_id=t.device_id,
                range_min_c=t.range_min_c,
                range_max_c=t.range_max_c,
            )
        elif isinstance(t, Gfx4Transport):
            m.lamps = Gfx4Lamps(
                bus(t, t.framing), clock, base_node=t.base_node, zones=plant.params.zones
            )
        elif isinstance(t, TpgTransport):
            m.gauge = Tpg36x(
                SerialLine("gauge", t.url, baudrate=t.baudrate), clock, channel=t.channel
            )
        elif isinstance(t, JulaboTransport):
            line = SerialLine(
                "chiller", t.url, baudrate=t.baudrate, bytesize=7, parity="E", min_gap_s=MIN_GAP_S
            )
            m.chiller = JulaboChiller(line, clock)
        elif isinstance(t, TeledyneTransport):
            line = SerialLine("o2", t.url, baudrate=t.baudrate, eol=b"\r\n")
            m.o2 = Teledyne3000TA(line, clock, period_s=t.period_s)
        elif driver == "nxds" and isinstance(t, SerialTransport):
            m.pump = NxdsPump(SerialLine("pump", t.url, baudrate=t.baudrate))
    return BuiltMachine(m, None)


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
