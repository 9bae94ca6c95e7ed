"""ZStage driver of a Zaber stage on the ASCII protocol (drivers/zaber/protocol.py).

Positions go over the wire in microsteps (``um_per_microstep`` is the stage's microstep size
from its datasheet), speeds and accelerations in the device's own units. One exchange per
call where the protocol allows it: ``get pos`` answers the position, busy/idle and the
warning flags (stall, not homed) together, so the 20 Hz status costs one short line.

The force is not a Zaber quantity: a load cell under the support, read through its
amplifier's 4-20 mA on an analog input of the I/O coupler (``ForceSource``, ADR 0024).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Protocol

from drivers.clock import Clock
from drivers.errors import DeviceError, DeviceFault, InvalidCommand
from drivers.protocols import DEFAULT_TIMEOUT_S, StageStatus
from drivers.reading import Reading, Status
from drivers.serial_line import SerialLine
from drivers.zaber import protocol as p

EOL = b"\r\n"


class ForceSource(Protocol):
    async def read_force(self, timeout: float) -> Reading:
        """Force on the support, N."""


class ZaberStage:
    def __init__(
        self,
        line: SerialLine,
        clock: Clock,
        *,
        um_per_microstep: float,
        speed_max_um_s: float,
        accel_um_s2: float,
        travel_um: float,
        force: ForceSource | None = None,
        device: int = 1,
        axis: int = 1,
        name: str = "zstage",
    ) -> None:
        if not (math.isfinite(um_per_microstep) and um_per_microstep > 0):
            raise ValueError(f"um_per_microstep = {um_per_microstep}: must be > 0")
        self._line = line
        self._clock = clock
        self._step = um_per_microstep
        self._speed_max = speed_max_um_s
        self._accel = accel_um_s2
        self._travel = travel_um
        self._force = force
        self._device, self._axis = device, axis
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    async def connect(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._line.connect(timeout)

    async def close(self) -> None:
        await self._line.close()

    async def _ask(self, text: str, timeout: float) -> p.Reply:
        async with self._line.lock:
            raw = await self._line.exchange(
                p.command(self._device, self._axis, text), timeout, eol=EOL
            )
        try:
            reply = p.parse_reply(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise DeviceError(self._name, f"{text}: garbled answer {raw!r}") from exc
        if (reply.device, reply.axis) != (self._device, self._axis):
            raise DeviceError(
                self._name, f"{text}: answer from {reply.device} {reply.axis}, not ours"
            )
        if not reply.ok:
            if reply.flag in p.NOT_HOMED_FLAGS:
                raise InvalidCommand(self._name, f"{text}: rejected, not homed (home() first)")
            raise InvalidCommand(self._name, f"{text}: rejected ({reply.data or 'no reason'})")
        if reply.fault:
            raise DeviceFault(
                self._name, f"{text}: {reply.flag} {p.FLAGS.get(reply.flag, 'fault')}"
            )
        return reply

    async def identify(self, timeout: float = DEFAULT_TIMEOUT_S) -> str:
        dev = await self._ask("get deviceid", timeout)
        serial = await self._ask("get system.serial", timeout)
        fw = await self._ask("get version", timeout)
        return f"Zaber device id {dev.data}, serial {serial.data}, firmware {fw.data}"

    async def home(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._ask("home", timeout)

    async def move_abs(
        self,
        position_um: float,
        speed_um_s: float,
        timeout: float = DEFAULT_TIMEOUT_S,
        *,
        accel_um_s2: float | None = None,
    ) -> None:
        if not (math.isfinite(position_um) and 0.0 <= position_um <= self._travel):
            raise InvalidCommand(
                self._name, f"position_um = {position_um} outside 0..{self._travel:g}"
            )
        if not (math.isfinite(speed_um_s) and 0.0 < speed_um_s <= self._speed_max):
            raise InvalidCommand(
                self._name, f"speed_um_s = {speed_um_s} outside (0, {self._speed_max:g}]"
            )
        accel = self._accel if accel_um_s2 is None else accel_um_s2
        if not (math.isfinite(accel) and accel > 0.0):
            raise InvalidCommand(self._name, f"accel_um_s2 = {accel_um_s2}: must be > 0")
        speed = max(1, round(speed_um_s / self._step * p.SPEED_UNIT))
        acc = max(1, round(accel / self._step * p.ACCEL_UNIT))
        await self._ask(f"set maxspeed {speed}", timeout)
        await self._ask(f"set accel {acc}", timeout)
        await self._ask(f"move abs {round(position_um / self._step)}", timeout)

    async def stop(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        # A stop must go out even on a stalled axis: its fault flag is no reason to refuse.
        with contextlib.suppress(DeviceFault):
            await self._ask("stop", timeout)

    async def _read_force(self, timeout: float) -> Reading:
        if self._force is None:
            return Reading(math.nan, self._clock.now(), Status.FAULT, "no load cell configured")
        try:
            return await self._force.read_force(timeout)
        except DeviceError as exc:
            return Reading(math.nan, self._clock.now(), Status.FAULT, f"load cell: {exc}")

    async def _pos(self, timeout: float) -> p.Reply:
        async with self._line.lock:
            raw = await self._line.exchange(
                p.command(self._device, self._axis, "get pos"), timeout, eol=EOL
            )
        try:
            reply = p.parse_reply(raw.decode("ascii"))
            int(reply.data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise DeviceError(self._name, f"get pos: garbled answer {raw!r}") from exc
        if not reply.ok:
            raise DeviceError(self._name, f"get pos: rejected ({reply.data})")
        return reply

    async def status(self, timeout: float = DEFAULT_TIMEOUT_S) -> StageStatus:
        started = self._clock.now()
        reply, force = await asyncio.gather(self._pos(timeout), self._read_force(timeout))
        flag = reply.flag
        return StageStatus(
            position_um=Reading(int(reply.data) * self._step, started),
            force_n=force,
            busy=reply.busy,
            homed=flag not in p.NOT_HOMED_FLAGS,
            fault=reply.fault,
            detail="" if flag == p.NO_FLAG else f"{flag} {p.FLAGS.get(flag, 'unknown flag')}",
        )
