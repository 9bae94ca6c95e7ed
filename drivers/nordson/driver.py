"""Dispenser driver of the Nordson EFD Ultimus in timed mode.

At connect the unit is put in kPa (``E6``) and timed mode (``TT``), and the memory location
in use is read (``UA``) so that pressure feedback (``E8``) reads the right one. A shot is
``DS`` (time) then ``DI`` (initiate): the unit times it itself. The Ultimus reports no
"dispensing now" over RS-232, so ``dispensing`` is derived from the trigger time and the shot
time on the daemon's clock. ``stop()`` sets the pressure to 0: without air pressure nothing
flows, and the protocol has no command that aborts a timed shot (ADR 0026).
"""

from __future__ import annotations

import math

from drivers.clock import Clock
from drivers.errors import DeviceError, DeviceFault, InvalidCommand
from drivers.nordson import protocol as p
from drivers.protocols import DEFAULT_TIMEOUT_S, DispenserStatus
from drivers.serial_line import SerialLine


class UltimusDispenser:
    def __init__(
        self,
        line: SerialLine,
        clock: Clock,
        *,
        pressure_max_kpa: float = 689.0,
        name: str = "dispenser",
    ) -> None:
        self._line = line
        self._clock = clock
        self._p_max = pressure_max_kpa
        self._name = name
        self._memory = "000"
        self._shot_end: float | None = None
        line.on_connect.append(self._configure)

    @property
    def name(self) -> str:
        return self._name

    async def _exchange(
        self, command: str, data: str, timeout: float, *, feedback: bool, locked: bool = False
    ) -> str:
        if not locked:
            async with self._line.lock:
                await self._line.ensure(timeout)
                return await self._exchange(command, data, timeout, feedback=feedback, locked=True)
        line = self._line
        await line.exchange(p.ENQ, timeout, eol=p.ACK)
        raw = await line.exchange(p.packet(command, data), timeout, eol=p.ETX)
        try:
            result = p.parse(raw)
        except ValueError as exc:
            await line.send(p.EOT, timeout)
            raise DeviceError(self._name, f"{command.strip()}: {exc}") from exc
        if result == p.FAILURE:
            await line.send(p.EOT, timeout)
            raise DeviceFault(self._name, f"{command.strip()}{data}: refused (A2)")
        if result != p.SUCCESS:
            await line.send(p.EOT, timeout)
            raise DeviceError(self._name, f"{command.strip()}: unexpected answer {result!r}")
        answer = ""
        if feedback:
            raw = await line.exchange(p.ACK, timeout, eol=p.ETX)
            try:
                answer = p.parse(raw)
            except ValueError as exc:
                await line.send(p.EOT, timeout)
                raise DeviceError(self._name, f"{command.strip()}: {exc}") from exc
            if not answer.startswith("D0"):
                await line.send(p.EOT, timeout)
                raise DeviceError(self._name, f"{command.strip()}: unexpected data {answer!r}")
            answer = answer[2:]
        await line.send(p.EOT, timeout)
        return answer

    async def _configure(self) -> None:
        t = 1.0
        await self._exchange("E6  ", p.UNITS_KPA, t, feedback=False, locked=True)
        await self._exchange("TT  ", "", t, feedback=False, locked=True)
        mem = await self._exchange("UA   ", "", t, feedback=True, locked=True)
        if len(mem) != 3 or not mem.isdigit():
            raise DeviceError(self._name, f"UA: unexpected memory location {mem!r}")
        self._memory = mem

    async def connect(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._line.connect(timeout)

    async def close(self) -> None:
        await self._line.close()

    async def set_pressure(self, kpa: float, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not (math.isfinite(kpa) and 0.0 <= kpa <= self._p_max):
            raise InvalidCommand(self._name, f"kpa = {kpa} outside 0..{self._p_max:g}")
        await self._exchange(
            "PS  ", f"{round(kpa * p.PRESSURE_SCALE):04d}", timeout, feedback=False
        )

    async def dispense(self, duration_s: float, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not (math.isfinite(duration_s) and 0.0 < duration_s <= p.TIME_MAX_S):
            raise InvalidCommand(
                self._name, f"duration_s = {duration_s} outside (0, {p.TIME_MAX_S:g}]"
            )
        ticks = max(1, round(duration_s * p.TIME_SCALE))
        await self._exchange("DS  ", f"T{ticks:05d}", timeout, feedback=False)
        await self._exchange("DI  ", "", timeout, feedback=False)
        self._shot_end = self._clock.now() + ticks / p.TIME_SCALE

    async def stop(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._exchange("PS  ", "0000", timeout, feedback=False)
        self._shot_end = None

    async def status(self, timeout: float = DEFAULT_TIMEOUT_S) -> DispenserStatus:
        fb = await self._exchange("E8", self._memory, timeout, feedback=True)
        alarms = await self._exchange("EL  ", "", timeout, feedback=True)
        try:
            if not fb.startswith("PD"):
                raise ValueError(fb)
            kpa = int(fb[2:6]) / p.PRESSURE_SCALE
        except ValueError as exc:
            raise DeviceError(self._name, f"E8: garbled feedback {fb!r}") from exc
        # D0INiPApAIa: input alarm, pressure alarm, auto-increment alarm; 1 = set.
        pressure_alarm = "PA1" in alarms
        input_alarm = "IN1" in alarms
        fault = pressure_alarm or input_alarm
        detail = ", ".join(
            w for w, on in (("pressure alarm", pressure_alarm), ("input alarm", input_alarm)) if on
        )
        end = self._shot_end
        dispensing = end is not None and self._clock.now() < end and not fault
        return DispenserStatus(dispensing=dispensing, pressure_kpa=kpa, fault=fault, detail=detail)
