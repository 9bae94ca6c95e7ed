"""Chiller driver of the Julabo FL/SL series.

The manual asks for at least 250 ms between commands, so a full status (three queries) takes
three quarters of a second, longer than one 100 ms control period. ``status()`` therefore never
waits for the gap: each call makes at most one query, in turn, and returns the composite with
the temperature's own timestamp; a temperature older than ``stale_after_s`` reads STALE.
Commands (``out_...``) have no answer; they put the unit in remote mode. The unit does not
restart by itself after a power loss, so ``start()`` is always explicit.
"""

from __future__ import annotations

import itertools

from drivers.clock import Clock
from drivers.errors import DeviceError, DeviceFault, InvalidCommand
from drivers.protocols import DEFAULT_TIMEOUT_S, ChillerStatus
from drivers.reading import Reading, Status
from drivers.serial_line import SerialLine

DEVICE_MIN_GAP_S = 0.25  # the manual's minimum between two commands
# Ours, with a margin: a USB-serial adapter or device server delays one byte more than the
# next, and a command the unit sees 249 ms after the previous one is silently ignored.
MIN_GAP_S = 0.3
EOL = b"\r\n"
QUERIES = ("in_pv_00", "status", "in_pv_00", "in_sp_00")


class JulaboChiller:
    def __init__(
        self,
        line: SerialLine,
        clock: Clock,
        *,
        setpoint_min_c: float = -10.0,
        setpoint_max_c: float = 60.0,
        stale_after_s: float = 3.0,
        name: str = "chiller",
    ) -> None:
        self._line = line
        self._clock = clock
        self._name = name
        self._sp_min, self._sp_max = setpoint_min_c, setpoint_max_c
        self._stale_after = stale_after_s
        self._pv: Reading | None = None
        self._sp: float | None = None
        self._status: tuple[int, str] | None = None
        self._turn = itertools.cycle(QUERIES)
        line.on_connect.append(self._refresh_all)

    @property
    def name(self) -> str:
        return self._name

    async def connect(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._line.connect(max(timeout, 4 * MIN_GAP_S))

    async def close(self) -> None:
        await self._line.close()

    async def _query(self, cmd: str, timeout: float) -> None:
        raw = await self._line.exchange(cmd.encode("ascii") + b"\r", timeout, eol=EOL)
        try:
            text = raw.decode("ascii").strip()
            if cmd == "status":
                code_s, _, msg = text.partition(" ")
                self._status = (int(code_s), msg.strip())
            else:
                value = float(text)
                if cmd == "in_pv_00":
                    self._pv = Reading(value, self._clock.now())
                else:
                    self._sp = value
        except (UnicodeDecodeError, ValueError) as exc:
            raise DeviceError(self._name, f"{cmd}: garbled answer {raw!r}") from exc

    async def _refresh_all(self) -> None:
        # What is already known is not asked again: a re-connect runs inside a monitor read,
        # and each query costs the unit's 250 ms gap (the temperature keeps its own
        # timestamp and reads STALE when old; the rotation refreshes everything in ~1.2 s).
        for cmd, known in (
            ("in_pv_00", self._pv),
            ("in_sp_00", self._sp),
            ("status", self._status),
        ):
            if known is None:
                await self._query(cmd, 1.0)

    async def _command(self, cmd: str, timeout: float) -> None:
        async with self._line.lock:
            await self._line.send(cmd.encode("ascii") + b"\r", timeout)
            # The unit answers nothing to out_ commands; the status shows whether it obeyed,
            # and a refused command shows as a negative status code.
            await self._query("status", timeout)
        if self._status is not None and self._status[0] < 0:
            raise DeviceFault(self._name, f"{cmd}: {self._status[0]:03d} {self._status[1]}")

    async def set_setpoint(self, celsius: float, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if (
            isinstance(celsius, bool)
            or not isinstance(celsius, int | float)
            or not self._sp_min <= celsius <= self._sp_max
        ):
            raise InvalidCommand(
                self._name, f"celsius = {celsius!r} outside {self._sp_min:g}..{self._sp_max:g}"
            )
        await self._command(f"out_sp_00 {celsius:.2f}", max(timeout, 3 * MIN_GAP_S))
        self._sp = float(celsius)

    async def identify(self, timeout: float = DEFAULT_TIMEOUT_S) -> str:
        """``version``: the unit's type and firmware, as it spells them."""
        async with self._line.lock:
            raw = await self._line.exchange(b"version\r", max(timeout, 2 * MIN_GAP_S), eol=EOL)
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise DeviceError(self._name, f"version: garbled answer {raw!r}") from exc
        if not text:
            raise DeviceError(self._name, "version: empty answer")
        return text

    async def start(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._command("out_mode_05 1", max(timeout, 3 * MIN_GAP_S))

    async def stop(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._command("out_mode_05 0", max(timeout, 3 * MIN_GAP_S))

    async def status(self, timeout: float = DEFAULT_TIMEOUT_S) -> ChillerStatus:
        # A command in progress holds the line for its gap and answer (half a second): the
        # monitor takes the cached status rather than stall every other device's reading.
        if not self._line.lock.locked():
            async with self._line.lock:
                await self._line.ensure(timeout)
                if self._line.gap_elapsed():
                    await self._query(next(self._turn), timeout)
        if self._pv is None or self._status is None or self._sp is None:
            raise DeviceError(self._name, "no status yet")
        pv = self._pv
        if self._clock.now() - pv.ts > self._stale_after * self._clock.speed:
            pv = Reading(pv.value, pv.ts, Status.STALE, "temperature not refreshed")
        code, msg = self._status
        return ChillerStatus(
            temperature=pv,
            setpoint_c=self._sp,
            running=code in (1, 3),
            fault=code < 0,
            detail=f"{code:02d} {msg}",
        )
