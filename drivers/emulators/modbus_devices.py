"""Modbus emulators: WAGO 750-352 (TCP), ADAM-6018+ (TCP), GFX4-IR (RTU, over TCP).

Each is a pymodbus server whose datastore is computed from the plant on every request (the
plant integrates lazily, so a request sees the plant at that instant). The sensor models of
the simulated twins (noise, quantization, injected faults) are reused, so an emulator and
the in-process simulation show the same machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import time
from collections.abc import Sequence

import structlog
from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler

from drivers.adam import registers as adam
from drivers.errors import DeviceError
from drivers.gefran import registers as gfx
from drivers.protocols import OUTPUTS, VALVES
from drivers.reading import Status
from drivers.sim.devices import SimDigitalIO, SimLampBank, SimThermocouples, SimValves
from drivers.sim.plant import Plant
from drivers.wago import registers as wago

log = structlog.get_logger(__name__)

SIM_TIMEOUT_S = 0.01  # how long an emulator waits on a simulated device that has "died"
# An answer (or a pause of the emulators' event loop) this slow is logged: a device on
# loopback answers in milliseconds, and a HIL run that failed must say whether the emulators
# were slow (a starved process, a request queued behind another) or the daemon was.
SLOW_ANSWER_S = 0.1


class Misbehaviour:
    """What an emulator does wrong on purpose (tests: no answer, garbage, slow, lost frames)."""

    def __init__(self) -> None:
        self.silent = False
        self.garbage = False
        self.delay_s = 0.0
        # The next this-many answers are lost on the wire (noise, a corrupted frame the
        # master discards): the device did receive and carry out each request.
        self.drop_answers = 0
        self.dropped = 0  # answers lost so far
        self.delayed = 0  # answers held back by ``delay_s`` so far (tests: one is under way)

    def clear(self) -> None:
        self.silent, self.garbage, self.delay_s = False, False, 0.0
        self.drop_answers = 0

    def lose_answer(self) -> bool:
        """Whether this answer is one of the lost ones (counts it)."""
        if self.drop_answers <= 0:
            return False
        self.drop_answers -= 1
        self.dropped += 1
        return True


class _PlantContext(ModbusServerContext):
    """A server context answering from device logic instead of a stored register block."""

    def __init__(self, device_ids: Sequence[int], bad: Misbehaviour) -> None:
        # The base class's storage is not used: every value is computed per request.
        self.old_simulator = True
        self.simdevices = []
        self._ids = list(device_ids)
        self._bad = bad

    def device_ids(self) -> list[int]:
        return list(self._ids)

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        if device_id not in self._ids:
            raise NoSuchIdException(f"no device {device_id}")
        if self._bad.delay_s:
            self._bad.delayed += 1
            await asyncio.sleep(self._bad.delay_s)
        try:
            return await self.read(device_id, func_code, address, count)
        except DeviceError:
            return ExcCodes.DEVICE_FAILURE

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        if device_id not in self._ids:
            raise NoSuchIdException(f"no device {device_id}")
        try:
            return await self.write(device_id, func_code, address, list(values))
        except DeviceError:
            return ExcCodes.DEVICE_FAILURE

    async def read(
        self, device_id: int, fc: int, address: int, count: int
    ) -> list[int] | list[bool] | ExcCodes:
        raise NotImplementedError

    async def write(
        self, device_id: int, fc: int, address: int, values: list[int]
    ) -> ExcCodes | None:
        raise NotImplementedError


def _window(regs: dict[int, int], address: int, count: int) -> list[int] | ExcCodes:
    if any(a not in regs for a in range(address, address + count)):
        return ExcCodes.ILLEGAL_ADDRESS
    return [regs[a] for a in range(address, address + count)]


class WagoContext(_PlantContext):
    """750-352 process image and Modbus watchdog (wall time, like the hardware timer)."""

    def __init__(
        self, plant: Plant, bad: Misbehaviour, *, load_cell_full_scale_n: float = 10.0
    ) -> None:
        super().__init__([0, 1, 255], bad)  # the coupler answers any unit id on TCP
        self.plant = plant
        self.load_cell_full_scale_n = load_cell_full_scale_n
        self.load_cell_broken = False  # tests: the amplifier's loop is open (< 4 mA)
        # Outputs the plant does not model (yet) latch here, as the module's output would.
        self.extra_outputs: dict[str, bool] = {}
        self._dio = SimDigitalIO(plant)
        self._valves = SimValves(plant)
        self._dio._connected = True
        self._valves._connected = True
        self.wd_time = 0  # 100 ms units
        self.wd_mask = 0
        self.wd_mask_hi = 0
        self.wd_trigger = 0
        self.wd_status = wago.WD_STATUS_OFF
        self.wd_close_socket = 0
        self.wd_deadline: float | None = None
        self.expiries = 0

    @staticmethod
    def now() -> float:
        # The coupler's watchdog is a hardware timer: it runs on wall time whatever the
        # plant's speed, as it does on the machine.
        return time.monotonic()

    def _retrigger(self, fc: int) -> None:
        if self._bad.silent or self.plant.unresponsive("dio"):
            return  # the cable is cut: the request never reached the coupler
        if self.wd_status == wago.WD_STATUS_ACTIVE and self.wd_mask & (1 << (fc - 1)):
            self.wd_deadline = self.now() + self.wd_time / 10.0

    def check_watchdog(self) -> None:
        """Expire the watchdog if its time has passed: every output to 0."""
        deadline = self.wd_deadline
        if self.wd_status != wago.WD_STATUS_ACTIVE or deadline is None:
            return
        if self.now() >= deadline:
            self.wd_status = wago.WD_STATUS_EXHAUSTED
            self.wd_deadline = None
            self.expiries += 1
            for name in OUTPUTS:
                self.plant.set_output(name, False)
            for valve in VALVES:
                self.plant.set_valve(valve, False)
            for name in self.extra_outputs:
                self.extra_outputs[name] = False

    async def _outputs(self) -> list[bool]:
        outs = await self._dio.read_outputs(SIM_TIMEOUT_S)
        valves = await self._valves.states(SIM_TIMEOUT_S)
        bits = [False] * wago.N_OUTPUTS
        for name, ch in wago.OUTPUT_CHANNELS.items():
            if name in outs:
                bits[ch] = outs[name]
            elif name in valves:
                bits[ch] = valves[name]
            else:
                bits[ch] = self.extra_outputs.get(name, False)
        return bits

    def _inputs(self, plant_inputs: dict[str, bool]) -> list[bool]:
        bits = [False] * wago.N_INPUTS
        for name, ch in wago.INPUT_CHANNELS.items():
            # The plant models the hold-down lines' vacuum switches (drivers/sim/plant.py).
            bits[ch] = plant_inputs.get(name, False)
        return bits

    def _analog(self) -> list[int]:
        """750-455 process values: the load cell on channel 0, nothing wired on the others."""
        values = [wago.AI_UNDERRANGE] * wago.N_AI  # open loop: below 4 mA
        self.plant.advance()
        if not self.load_cell_broken:
            frac = self.plant.force_n / self.load_cell_full_scale_n
            if frac > 1.0:
                values[wago.AI_LOAD_CELL] = 0x7FFF  # above 20 mA
            else:
                raw = round(max(0.0, frac) * wago.AI_FULL_SCALE)
                values[wago.AI_LOAD_CELL] = raw & ~wago.AI_STATUS_MASK
        return values

    def _regs(self) -> dict[int, int]:
        return {
            wago.WD_TIME: self.wd_time,
            wago.WD_FC_MASK: self.wd_mask,
            wago.WD_FC_MASK_HI: self.wd_mask_hi,
            wago.WD_TRIGGER: self.wd_trigger,
            wago.WD_AC_TRG_TIME: 0xFFFF,
            wago.WD_AC_STOP_MASK: 0,
            wago.WD_RUNNING: self.wd_status,
            wago.WD_RESTART: 1,
            wago.WD_AC_STOP_SIMPLE: 0,
            wago.WD_CLOSE_SOCKET: self.wd_close_socket,
            wago.INFO_REVISION: 17,
            wago.INFO_SERIES: 750,
            wago.INFO_ITEM: 352,
            wago.INFO_FW_MAJOR: 1,
            wago.INFO_FW_MINOR: 17,
        }

    async def read(
        self, device_id: int, fc: int, address: int, count: int
    ) -> list[int] | list[bool] | ExcCodes:
        self.check_watchdog()
        self._retrigger(fc)
        if fc == 2 or (fc == 1 and address < wago.OUTPUTS_READBACK_BASE):
            bits = self._inputs(await self._dio.read_inputs(SIM_TIMEOUT_S))
            start = address - wago.INPUTS_BASE
            if start < 0 or start + count > wago.N_INPUTS:
                return ExcCodes.ILLEGAL_ADDRESS
            return bits[start : start + count]
        if fc in (1, 5, 15):
            base = wago.OUTPUTS_READBACK_BASE if fc == 1 else wago.OUTPUTS_BASE
            start = address - base
            bits = await self._outputs()
            if start < 0 or start + count > wago.N_OUTPUTS:
                return ExcCodes.ILLEGAL_ADDRESS
            return bits[start : start + count]
        if fc in (3, 4) and address < 0x0100:
            start = address - wago.AI_BASE
            if start + count > wago.N_AI:
                return ExcCodes.ILLEGAL_ADDRESS
            return self._analog()[start : start + count]
        if fc in (3, 4, 6, 16):
            return _window(self._regs(), address, count)
        return ExcCodes.ILLEGAL_FUNCTION

    async def write(
        self, device_id: int, fc: int, address: int, values: list[int]
    ) -> ExcCodes | None:
        self.check_watchdog()
        self._retrigger(fc)
        if fc in (5, 15):
            start = address - wago.OUTPUTS_BASE
            if start < 0 or start + len(values) > wago.N_OUTPUTS:
                return ExcCodes.ILLEGAL_ADDRESS
            if self.wd_status == wago.WD_STATUS_EXHAUSTED:
                # After a watchdog timeout the outputs stay off until the master restarts it.
                return ExcCodes.DEVICE_FAILURE
            by_channel = {ch: name for name, ch in wago.OUTPUT_CHANNELS.items()}
            for i, v in enumerate(values):
                name = by_channel.get(start + i)
                if name in OUTPUTS:
                    await self._dio.write_output(name, bool(v), SIM_TIMEOUT_S)
                elif name in VALVES:
                    await self._valves.set(name, bool(v), SIM_TIMEOUT_S)
                elif name is not None:
                    self.extra_outputs[name] = bool(v)
            return None
        if fc in (6, 16):
            for i, v in enumerate(values):
                rc = self._write_register(address + i, int(v))
                if rc is not None:
                    return rc
            return None
        return ExcCodes.ILLEGAL_FUNCTION

    def _write_register(self, address: int, v: int) -> ExcCodes | None:
        running = self.wd_status == wago.WD_STATUS_ACTIVE
        if address in (wago.WD_TIME, wago.WD_FC_MASK, wago.WD_FC_MASK_HI) and running:
            return ExcCodes.ILLEGAL_VALUE  # locked while the watchdog runs
        if address == wago.WD_TIME:
            self.wd_time = v
        elif address == wago.WD_FC_MASK:
            self.wd_mask = v
        elif address == wago.WD_FC_MASK_HI:
            self.wd_mask_hi = v
        elif address == wago.WD_TRIGGER:
            if (
                v != self.wd_trigger
                and self.wd_time > 0
                and self.wd_status != wago.WD_STATUS_EXHAUSTED
            ):
                self.wd_status = wago.WD_STATUS_ACTIVE
                self.wd_deadline = self.now() + self.wd_time / 10.0
            self.wd_trigger = v
        elif address == wago.WD_RESTART:
            if v == 1 and self.wd_status == wago.WD_STATUS_EXHAUSTED and self.wd_time > 0:
                self.wd_status = wago.WD_STATUS_ACTIVE
                self.wd_deadline = self.now() + self.wd_time / 10.0
        elif address == wago.WD_AC_STOP_SIMPLE:
            if v in (0xAA55, 0x55AA):
                self.wd_status = wago.WD_STATUS_OFF
                self.wd_deadline = None
        elif address == wago.WD_CLOSE_SOCKET:
            self.wd_close_socket = v
        elif wago.INFO_REVISION <= address <= wago.INFO_FW_MINOR:
            return ExcCodes.ILLEGAL_ADDRESS  # constants: read only
        elif address not in self._regs():
            return ExcCodes.ILLEGAL_ADDRESS
        return None

    async def watch(self) -> None:
        """The coupler's own timer: expires the watchdog even when nobody asks."""
        while True:
            self.check_watchdog()
            await asyncio.sleep(0.02)


class AdamContext(_PlantContext):
    """ADAM-6018+: type K channels, the bonder's thermocouples on inputs 0.. in TC order."""

    def __init__(self, plant: Plant, bad: Misbehaviour) -> None:
        super().__init__([1], bad)
        self._tc = SimThermocouples(plant)
        self._tc._connected = True
        self._span = adam.TYPE_K_MAX_C - adam.TYPE_K_MIN_C

    async def read(
        self, device_id: int, fc: int, address: int, count: int
    ) -> list[int] | list[bool] | ExcCodes:
        if fc not in (3, 4):
            return ExcCodes.ILLEGAL_FUNCTION
        readings = list((await self._tc.read(SIM_TIMEOUT_S)).values())
        regs: dict[int, int] = {}
        for idx in range(adam.CHANNELS):
            status = 0
            raw = 0
            if idx < len(readings):
                rd = readings[idx]
                if rd.status is Status.FAULT:
                    raw, status = adam.RAW_FULL_SCALE, adam.STATUS_OPEN_CIRCUIT
                else:
                    frac = (rd.value - adam.TYPE_K_MIN_C) / self._span
                    if frac > 1.0:
                        status = adam.STATUS_OVER_RANGE
                    elif frac < 0.0:
                        status = adam.STATUS_UNDER_RANGE
                    raw = round(min(1.0, max(0.0, frac)) * adam.RAW_FULL_SCALE)
            else:
                raw, status = adam.RAW_FULL_SCALE, adam.STATUS_OPEN_CIRCUIT  # nothing wired
            regs[adam.AI_VALUE_BASE + idx] = raw
            regs[adam.AI_STATUS_BASE + 2 * idx] = status & 0xFFFF
            regs[adam.AI_STATUS_BASE + 2 * idx + 1] = status >> 16
        return _window(regs, address, count)

    async def write(
        self, device_id: int, fc: int, address: int, values: list[int]
    ) -> ExcCodes | None:
        return ExcCodes.ILLEGAL_ADDRESS


class Gfx4Context(_PlantContext):
    """GFX4-IR in GFX4 access mode: one node, zone maps at their offsets, the custom map.

    The RS-485 line's speed is modelled: every transaction takes its frames' time on the wire
    at ``baudrate`` (11 bits a character, 3.5 characters of silence after each frame), as
    the serial device server in front of the real unit would make it take.
    """

    def __init__(
        self, plant: Plant, bad: Misbehaviour, node: int = 1, baudrate: int | None = 19200
    ) -> None:
        super().__init__([node], bad)
        self.plant = plant
        self.baudrate = baudrate
        zones = plant.params.zones
        self._zones = zones
        self._lamps = SimLampBank(plant)
        self._lamps._connected = True
        self.manual = [0] * zones
        self.sp_r = [0] * zones  # 0 = EEPROM storage (the factory default)
        self.eeprom_writes = 0
        # RS-485 is half duplex and the unit answers one request at a time, in order: a
        # request that arrives while one is being answered waits (pymodbus's server would
        # otherwise serve them concurrently, which no RTU device does).
        self._line = asyncio.Lock()
        # Commissioning configured the custom map as the driver expects (docs/devices.md).
        self.custom: dict[int, tuple[int, int]] = {}
        for z in range(zones):
            self.custom[gfx.CUSTOM_MANUAL + z] = (z, gfx.MANUAL_POWER)
            self.custom[gfx.CUSTOM_OUTPUT + z] = (z, gfx.OUTPUT_POWER)
            self.custom[gfx.CUSTOM_ALARMS + z] = (z, gfx.ALARMS)

    async def _wire(self, request_bytes: int, reply_bytes: int) -> None:
        if self.baudrate:
            chars = request_bytes + reply_bytes + 7  # + 2 x 3.5 characters of silence
            # Scaled like the plant: at --speed X the whole machine, its RS-485 line included,
            # runs X times faster, so the line's share of a control period stays the real one.
            speed = self.plant.clock.speed
            wire = chars * 11 / self.baudrate
            await asyncio.sleep(wire / speed if math.isfinite(speed) and speed > 0 else 0.0)

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        async with self._line:
            if func_code in (3, 4):
                await self._wire(8, 5 + 2 * count)
            elif func_code == 6:
                await self._wire(8, 8)
            return await super().async_getValues(device_id, func_code, address, count)

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        async with self._line:
            if func_code == 16:
                await self._wire(9 + 2 * len(values), 8)
            return await super().async_setValues(device_id, func_code, address, values)

    def _resolve(self, address: int) -> tuple[int, int] | None:
        """(zone, zone-map address) of a 16-bit address, or None."""
        if address in self.custom:
            return self.custom[address]
        for z in reversed(range(self._zones)):
            base = gfx.ZONE_OFFSET[z]
            if base <= address < base + 1024:
                return z, address - base
        return None

    async def read(
        self, device_id: int, fc: int, address: int, count: int
    ) -> list[int] | list[bool] | ExcCodes:
        if fc not in (3, 4, 6, 16):
            return ExcCodes.ILLEGAL_FUNCTION
        power = await self._lamps.read_power(SIM_TIMEOUT_S)
        out: list[int] = []
        for a in range(address, address + count):
            where = self._resolve(a)
            if where is None:
                return ExcCodes.ILLEGAL_ADDRESS
            z, param = where
            alarms = 0
            if power[z].status is Status.FAULT:
                alarms |= gfx.ALARM_NO_CURRENT
            if self.manual[z] > 0 and not self.plant.state.contactor_energized:
                alarms |= gfx.ALARM_NO_VOLTAGE
            regs = {
                gfx.PV: 0,
                gfx.OUTPUT_POWER: round(power[z].value * gfx.POWER_SCALE),
                gfx.ALARMS: alarms,
                gfx.SP_R: self.sp_r[z],
                gfx.MANUAL_POWER: self.manual[z],
            }
            if param not in regs:
                return ExcCodes.ILLEGAL_ADDRESS
            out.append(regs[param])
        return out

    async def write(
        self, device_id: int, fc: int, address: int, values: list[int]
    ) -> ExcCodes | None:
        if fc not in (6, 16):
            return ExcCodes.ILLEGAL_FUNCTION
        targets = [self._resolve(address + i) for i in range(len(values))]
        if any(t is None or t[1] not in (gfx.SP_R, gfx.MANUAL_POWER) for t in targets):
            return ExcCodes.ILLEGAL_ADDRESS
        for t, v in zip(targets, values, strict=True):
            assert t is not None
            if t[1] == gfx.SP_R and v not in (0, 1):
                return ExcCodes.ILLEGAL_VALUE
            if t[1] == gfx.MANUAL_POWER and not 0 <= v <= 100 * gfx.POWER_SCALE:
                return ExcCodes.ILLEGAL_VALUE
        powered = False
        for t, v in zip(targets, values, strict=True):
            assert t is not None
            z, param = t
            if param == gfx.SP_R:
                self.sp_r[z] = v
            else:
                self.manual[z] = v
                powered = True
                if self.sp_r[z] != gfx.SP_R_RAM_ONLY:
                    self.eeprom_writes += 1
        if powered:
            await self._lamps.set_power([m / gfx.POWER_SCALE for m in self.manual], SIM_TIMEOUT_S)
        return None


class _InOrderHandler(ServerRequestHandler):
    """One connection: each request answered in turn, with its own transaction id.

    pymodbus's handler serves every request in a task of its own and stamps the answer with
    the id of the *latest* request received: a slow answer overtaken by a retry would carry
    the retry's id. A device answers one request at a time, in order, each with its own id.
    """

    def __init__(self, owner: ModbusTcpServer) -> None:
        super().__init__(owner, owner.trace_packet, owner.trace_pdu, owner.trace_connect)  # type: ignore[no-untyped-call]
        self._order = asyncio.Lock()
        self._serving: set[asyncio.Task[None]] = set()

    def handle_later(self) -> None:
        pdu, addr = self.last_pdu, self.last_addr
        if pdu is None:
            return
        task = asyncio.get_running_loop().create_task(self._serve(pdu, addr, time.monotonic()))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    def callback_disconnected(self, exc: Exception | None) -> None:
        super().callback_disconnected(exc)
        # The master went away (or the emulator stops): an answer still being prepared has
        # nowhere to go; the request in progress ends here instead of outliving the server.
        for task in list(self._serving):
            task.cancel()

    async def _serve(self, pdu: ModbusPDU, addr: tuple[str, int] | None, received: float) -> None:
        async with self._order:
            began = time.monotonic()
            response: ModbusPDU
            try:
                response = await pdu.datastore_update(self.server.context, pdu.dev_id)
            except NoSuchIdException:
                if self.server.ignore_missing_devices:
                    return  # an absent RS-485 node is silent
                response = ExceptionResponse(pdu.function_code, ExcCodes.GATEWAY_NO_RESPONSE)
            except Exception:  # a device failure, as the pymodbus handler reports it
                response = ExceptionResponse(pdu.function_code, ExcCodes.DEVICE_FAILURE)
            response.transaction_id = pdu.transaction_id
            response.dev_id = pdu.dev_id
            self.server_send(response, addr)  # type: ignore[no-untyped-call]
            took = time.monotonic() - received
            if took > SLOW_ANSWER_S:
                log.warning(
                    "emulator_slow_answer",
                    device=type(self.server.context).__name__,
                    function=pdu.function_code,
                    took_s=round(took, 3),
                    queued_s=round(began - received, 3),  # behind this link's earlier request
                    delay_s=self.server.context._bad.delay_s,  # an injected delay, if any
                )


class _InOrderServer(ModbusTcpServer):
    def callback_new_connection(self) -> _InOrderHandler:
        return _InOrderHandler(self)


class ModbusEmulator:
    """A pymodbus TCP server around one context, with deliberate misbehaviour for tests."""

    def __init__(
        self,
        name: str,
        context: _PlantContext,
        *,
        framing: str = "tcp",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.name = name
        self.context = context
        self.bad = context._bad
        self.framing = framing
        self.host = host
        self.port = port
        self._server: ModbusTcpServer | None = None
        self._task: asyncio.Task[None] | None = None

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            return data
        if self.bad.silent or self.bad.lose_answer():
            return b""
        if self.bad.garbage:
            return os.urandom(max(5, len(data)))
        return data

    async def start(self) -> None:
        if self.port == 0:
            self.port = _free_port(self.host)
        self._server = _InOrderServer(
            self.context,
            framer=FramerType.RTU if self.framing == "rtu" else FramerType.SOCKET,
            address=(self.host, self.port),
            ignore_missing_devices=self.framing == "rtu",  # an RS-485 node that is absent is silent
            trace_packet=self._trace,
        )
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None

    @property
    def where(self) -> str:
        kind = "Modbus RTU over TCP" if self.framing == "rtu" else "Modbus TCP"
        return f"{kind} {self.host}:{self.port}"


def _free_port(host: str) -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port
