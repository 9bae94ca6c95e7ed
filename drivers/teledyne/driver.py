"""OxygenAnalyzer driver of the 3000TA.

The analyzer talks without being asked: one line per period (2 s), e.g.
``ST,    8.31 PPM, RA-LO, AL-OFF``. A reader task keeps the latest value with the clock time it
arrived. While the analyzer zeroes or spans it stops sending; the last value then ages and is
reported STALE after ``stale_after_s`` -- the gap is "not measuring", never 0 ppm.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from drivers.clock import Clock
from drivers.errors import DeviceError, DeviceNotConnected
from drivers.protocols import DEFAULT_TIMEOUT_S
from drivers.reading import Reading, Status
from drivers.serial_line import SerialLine

log = structlog.get_logger(__name__)

UNITS_TO_PPM = {"PPM": 1.0, "%": 10_000.0}


def parse_line(text: str) -> tuple[float, str]:
    """(ppm, range) from one streamed line; ValueError if it is not one."""
    fields = [f.strip() for f in text.split(",")]
    if len(fields) < 3 or fields[0] != "ST":
        raise ValueError(f"not a data line: {text!r}")
    number, _, unit = fields[1].partition(" ")
    factor = UNITS_TO_PPM.get(unit.strip().upper())
    if factor is None:
        raise ValueError(f"unknown unit in {text!r}")
    value = float(number) * factor
    if not value >= 0.0:
        raise ValueError(f"negative concentration in {text!r}")
    return value, fields[2]


class Teledyne3000TA:
    def __init__(
        self, line: SerialLine, clock: Clock, *, period_s: float = 2.0, name: str = "o2"
    ) -> None:
        self._line = line
        self._clock = clock
        self._period = period_s
        self._name = name
        self._last: Reading | None = None
        self._task: asyncio.Task[None] | None = None
        self.garbled = 0

    @property
    def name(self) -> str:
        return self._name

    async def connect(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        await self._line.connect(timeout)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name=f"{self._name}-stream")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._line.close()

    async def _listen(self) -> None:
        while True:
            try:
                raw = await self._line.readline(self._period * 5 / self._clock.speed + 1.0)
            except DeviceError as exc:
                # No line for a long time, or the link broke: keep the last value (it will
                # read STALE) and try again; SerialLine applies the reconnect backoff.
                log.debug("o2_stream_gap", why=str(exc))
                await asyncio.sleep(0.2)
                continue
            try:
                ppm, rng = parse_line(raw.decode("ascii", errors="strict"))
            except (UnicodeDecodeError, ValueError):
                self.garbled += 1
                continue
            self._last = Reading(ppm, self._clock.now(), detail=rng)

    async def read(self, timeout: float = DEFAULT_TIMEOUT_S) -> Reading:
        last = self._last
        if last is None:
            if not self._line.connected:
                raise DeviceNotConnected(self._name, "stream not connected")
            raise DeviceError(self._name, "no value streamed yet")
        if self._clock.now() - last.ts > 2.5 * self._period:
            return Reading(last.value, last.ts, Status.STALE, "analyzer not measuring (stream gap)")
        return last
