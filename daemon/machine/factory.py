"""The real drivers the config asks for, put in place of the simulated twins they replace.

Each real driver has a validated transport model (unknown keys, wrong types and out-of-range
values are ConfigErrors naming ``devices.<name>.transport.<key>``). Devices on one physical
link (the WAGO coupler serves both ``dio`` and ``valves``) share one bus object, hence one
lock. Devices left ``sim`` (or not configured) stay the simulated twins the rig
(daemon/run/rig.py) built on a local plant: this module never imports the simulation.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from daemon.config import (
    ConfigError,
    Settings,
    describe_pydantic_error,
    did_you_mean,
    toml_key_path,
)
from drivers.adam.driver import Adam6018
from drivers.clock import Clock
from drivers.edwards.driver import NxdsPump
from drivers.errors import DeviceError
from drivers.gefran.driver import Gfx4Lamps
from drivers.julabo.driver import MIN_GAP_S, JulaboChiller
from drivers.modbus import ModbusBus
from drivers.nordson.driver import UltimusDispenser
from drivers.omnicure.driver import OmniCureS2000
from drivers.pfeiffer.driver import Tpg36x
from drivers.protocols import TC_CHANNELS, Machine
from drivers.serial_line import SerialLine
from drivers.tc_pair import ThermocouplePair
from drivers.teledyne.driver import Teledyne3000TA
from drivers.wago import registers as wago_registers
from drivers.wago.driver import WagoCoupler, WagoDigitalIO, WagoLoadCell, WagoValves
from drivers.zaber.driver import ZaberStage

CONNECT_TIMEOUT_S = 5.0

Port = Annotated[int, Field(ge=1, le=65535)]
Timeout = Annotated[float, Field(gt=0.0, le=5.0)]


class _Transport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModbusTcpTransport(_Transport):
    host: Annotated[str, Field(min_length=1)]
    port: Port = 502
    device_id: Annotated[int, Field(ge=0, le=255)] = 1
    # Per attempt; the last attempt gets whatever is left of the call's own timeout (the
    # monitor's 0.5 s read budget). One lost frame costs one retry (0.2 s) inside that budget
    # instead of a blind read and a reconnect (ADR 0080).
    timeout_s: Timeout = 0.2
    retries: Annotated[int, Field(ge=0, le=5)] = 1


class WagoTransport(ModbusTcpTransport):
    # The coupler drops its outputs this long after the daemon's last request.
    watchdog_s: Annotated[float, Field(ge=0.1, le=60.0)] = 1.0


# A thermocouple channel: one of the machine's, or a panel's instrumented site (docs/panel.md).
TcChannelName = Annotated[str, Field(pattern=r"^(chip|component|chuck|site_[0-9]{1,3})$")]


class AdamTransport(ModbusTcpTransport):
    range_min_c: float = 0.0
    range_max_c: float = 1370.0
    # Which channel each of the module's eight inputs carries. None given: the machine's
    # three on inputs 0-2 (chip, component, chuck), as wired since the first machine.
    input_0: TcChannelName | None = None
    input_1: TcChannelName | None = None
    input_2: TcChannelName | None = None
    input_3: TcChannelName | None = None
    input_4: TcChannelName | None = None
    input_5: TcChannelName | None = None
    input_6: TcChannelName | None = None
    input_7: TcChannelName | None = None

    @model_validator(mode="after")
    def _one_input_a_channel(self) -> Self:
        seen: dict[str, int] = {}
        for i in range(8):
            ch = getattr(self, f"input_{i}")
            if ch is not None and ch in seen:
                raise ValueError(f"channel {ch!r} on input_{seen[ch]} and input_{i}")
            if ch is not None:
                seen[ch] = i
        return self

    def channel_map(self) -> dict[str, int] | None:
        """Channel -> input as configured, None if no input is named."""
        named = ((getattr(self, f"input_{i}"), i) for i in range(8))
        return {ch: i for ch, i in named if ch is not None} or None


class Gfx4Transport(_Transport):
    host: Annotated[str, Field(min_length=1)]
    port: Port = 502
    framing: Literal["rtu", "tcp"] = "rtu"
    node: Annotated[int, Field(ge=1, le=247)] = 1  # rotary switches; GFX4 access mode
    # The RS-485 line's speed, set on the device server and the GFX4 (the emulator and the
    # poll bench model the wire time from it).
    baudrate: Annotated[int, Field(ge=1200, le=115200)] = 19200
    # As Modbus TCP: the retry repeats the same request on the same line (idempotent reads
    # and absolute writes), and the line is kept quiet briefly after it (ADR 0080).
    timeout_s: Timeout = 0.2
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


class ZaberTransport(SerialTransport):
    baudrate: Annotated[int, Field(ge=300, le=115200)] = 115200
    device: Annotated[int, Field(ge=1, le=99)] = 1
    axis: Annotated[int, Field(ge=1, le=9)] = 1
    um_per_microstep: Annotated[float, Field(gt=0.0, le=100.0)]  # the stage's datasheet
    speed_max_um_s: Annotated[float, Field(gt=0.0)] = 1000.0
    accel_um_s2: Annotated[float, Field(gt=0.0)] = 2000.0  # default when a move names none
    travel_um: Annotated[float, Field(gt=0.0)] = 10_000.0
    # The support's load cell: its amplifier's 4-20 mA on the WAGO coupler's 750-455.
    force_source: Literal["wago-ai", "none"] = "wago-ai"
    force_channel: Annotated[int, Field(ge=0, lt=wago_registers.N_AI)] = wago_registers.AI_LOAD_CELL
    force_full_scale_n: Annotated[float, Field(gt=0.0)] = 10.0  # force at 20 mA
    force_zero_n: float = 0.0  # reading at 4 mA with the support unloaded (tare)


class OmniCureTransport(SerialTransport):
    baudrate: Annotated[int, Field(ge=300, le=115200)] = 19200
    # Irradiance at the work plane with the iris 100 % open, measured with a radiometer.
    irradiance_full_mw_cm2: Annotated[float, Field(gt=0.0)]


class UltimusTransport(SerialTransport):
    baudrate: Annotated[int, Field(ge=300, le=115200)] = 115200
    pressure_max_kpa: Annotated[float, Field(gt=0.0, le=700.0)] = 689.0


# driver name -> (transport model, device names it can serve)
DRIVERS: dict[str, tuple[type[_Transport], frozenset[str]]] = {
    "wago-750-352": (WagoTransport, frozenset({"dio", "valves"})),
    # site_thermocouples: a second module for a panel's instrumented sites.
    "adam-6018": (AdamTransport, frozenset({"thermocouples", "site_thermocouples"})),
    "gfx4-ir": (Gfx4Transport, frozenset({"lamps"})),
    "tpg36x": (TpgTransport, frozenset({"gauge"})),
    "nxds": (SerialTransport, frozenset({"pump"})),
    "julabo": (JulaboTransport, frozenset({"chiller"})),
    "teledyne-3000ta": (TeledyneTransport, frozenset({"o2"})),
    "zaber-ascii": (ZaberTransport, frozenset({"zstage"})),
    "omnicure-s2000": (OmniCureTransport, frozenset({"uv"})),
    "ultimus": (UltimusTransport, frozenset({"dispenser"})),
}


def real_transports(settings: Settings) -> dict[str, tuple[str, _Transport]]:
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
                close = (
                    did_you_mean(str(err["loc"][-1]), list(model.model_fields))
                    if err["type"] == "extra_forbidden" and len(err["loc"]) == 1
                    else None
                )
                hint = f" (did you mean {close}?)" if close else ""
                problems.append(f"{path}: {describe_pydantic_error(err)}{hint}")
    problems += _thermocouple_map_problems(out)
    zt = out.get("zstage", (None, None))[1]
    if isinstance(zt, ZaberTransport) and zt.force_source == "wago-ai":
        dio = out.get("dio", (None, None))[1]
        if not isinstance(dio, WagoTransport):
            problems.append(
                "devices.zstage.transport.force_source: 'wago-ai' reads the load cell on the "
                "WAGO coupler, but devices.dio is not a 'wago-750-352' (set force_source = "
                "'none' to run without a force reading)"
            )
    if problems:
        raise ConfigError(problems)
    return out


def _thermocouple_map_problems(real: dict[str, tuple[str, _Transport]]) -> list[str]:
    """The machine's three channels on the first module; a second module only beside a real
    first one, its inputs named, no channel on both."""
    first = real.get("thermocouples", (None, None))[1]
    second = real.get("site_thermocouples", (None, None))[1]
    problems: list[str] = []
    if isinstance(first, AdamTransport) and (mapped := first.channel_map()) is not None:
        missing = [ch for ch in TC_CHANNELS if ch not in mapped]
        if missing:
            problems.append(
                f"devices.thermocouples.transport: no input carries {', '.join(missing)} "
                "(the machine's channels are on the first module)"
            )
    if isinstance(second, AdamTransport):
        on_second = second.channel_map()
        if not isinstance(first, AdamTransport):
            problems.append(
                "devices.site_thermocouples: a second module needs devices.thermocouples "
                "on a real 'adam-6018' too"
            )
        elif on_second is None:
            problems.append(
                "devices.site_thermocouples.transport: name the site channel of each input "
                'used (input_0 = "site_1", ...)'
            )
        else:
            on_first = first.channel_map() or dict.fromkeys(TC_CHANNELS, 0)
            both = sorted(set(on_first) & set(on_second))
            if both:
                problems.append(
                    f"devices.site_thermocouples.transport: {', '.join(both)} already on "
                    "devices.thermocouples"
                )
    return problems


def put_real_drivers(
    twins: Machine,
    clock: Clock,
    real: dict[str, tuple[str, _Transport]],
    *,
    zones: int,
) -> Machine:
    """``twins`` with every device of ``real`` (from ``real_transports``) replaced by its driver."""
    m = twins
    buses: dict[tuple[str, int, str], ModbusBus] = {}

    def bus(t: ModbusTcpTransport | Gfx4Transport, framing: Literal["rtu", "tcp"]) -> ModbusBus:
        key = (t.host, t.port, framing)
        if key not in buses:
            settle = 0.0
            if isinstance(t, Gfx4Transport):
                # After a retry on RTU: long enough for the unit to answer one more request
                # (two 64-character frames at the line's speed) and a margin (ADR 0080).
                settle = 0.02 + 2 * 64 * 11 / t.baudrate
            buses[key] = ModbusBus(
                f"{t.host}:{t.port}",
                t.host,
                t.port,
                framing=framing,
                timeout_s=t.timeout_s,
                retries=t.retries,
                rtu_settle_s=settle,
            )
        return buses[key]

    coupler: WagoCoupler | None = None
    site_module: Adam6018 | None = None
    # The coupler first: the Z stage's load cell is one of its inputs.
    for name, (driver, t) in sorted(real.items(), key=lambda kv: kv[0] not in ("dio", "valves")):
        if isinstance(t, WagoTransport):
            if coupler is None:
                coupler = WagoCoupler(bus(t, "tcp"), device_id=t.device_id, watchdog_s=t.watchdog_s)
            if name == "dio":
                m.dio = WagoDigitalIO(coupler)
            else:
                m.valves = WagoValves(coupler)
        elif isinstance(t, AdamTransport):
            module = Adam6018(
                bus(t, "tcp"),
                clock,
                t.channel_map() or {ch: i for i, ch in enumerate(TC_CHANNELS)},
                device_id=t.device_id,
                range_min_c=t.range_min_c,
                range_max_c=t.range_max_c,
                name="tc" if name == "thermocouples" else "tc2",
            )
            if name == "thermocouples":
                m.thermocouples = module
            else:
                site_module = module
        elif isinstance(t, Gfx4Transport):
            m.lamps = Gfx4Lamps(bus(t, t.framing), clock, node=t.node, zones=zones)
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
        elif isinstance(t, ZaberTransport):
            force = None
            if t.force_source == "wago-ai":
                assert coupler is not None  # checked by real_transports
                force = WagoLoadCell(
                    coupler,
                    clock,
                    channel=t.force_channel,
                    full_scale_n=t.force_full_scale_n,
                    zero_offset_n=t.force_zero_n,
                )
            m.zstage = ZaberStage(
                SerialLine("zstage", t.url, baudrate=t.baudrate),
                clock,
                um_per_microstep=t.um_per_microstep,
                speed_max_um_s=t.speed_max_um_s,
                accel_um_s2=t.accel_um_s2,
                travel_um=t.travel_um,
                force=force,
                device=t.device,
                axis=t.axis,
            )
        elif isinstance(t, OmniCureTransport):
            m.uv = OmniCureS2000(
                SerialLine("uv", t.url, baudrate=t.baudrate),
                irradiance_full_mw_cm2=t.irradiance_full_mw_cm2,
            )
        elif isinstance(t, UltimusTransport):
            m.dispenser = UltimusDispenser(
                SerialLine("dispenser", t.url, baudrate=t.baudrate),
                clock,
                pressure_max_kpa=t.pressure_max_kpa,
            )
        elif driver == "nxds" and isinstance(t, SerialTransport):
            m.pump = NxdsPump(SerialLine("pump", t.url, baudrate=t.baudrate))
    if site_module is not None:
        m.thermocouples = ThermocouplePair(m.thermocouples, site_module)
    return m


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
