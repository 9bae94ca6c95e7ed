"""Clocks: real time, scaled time (``--speed``), and virtual time for tests.

Everything that waits or timestamps in the daemon and the plant goes through a Clock, so
a ten-minute recipe can run in seconds with the same code.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the clock started (process time, not wall-clock date)."""

    async def sleep(self, seconds: float) -> None: ...

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second (1 for real time)."""


_SELECTOR_RESOLUTION_S = 0.001


class ScaledClock:
    """Monotonic time multiplied by ``speed``; speed 1 is real time."""

    def __init__(self, speed: float = 1.0) -> None:
        if not 0 < speed < float("inf"):
            raise ValueError(f"speed must be > 0, got {speed}")
        self._speed = speed
        self._t0 = time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        return (time.monotonic() - self._t0) * self._speed

    async def sleep(self, seconds: float) -> None:
        wall = max(0.0, seconds) / self._speed
        if wall >= _SELECTOR_RESOLUTION_S:
            await asyncio.sleep(wall)
            return
        # The event loop's selector waits in whole milliseconds, so a shorter sleep would
        # last a full millisecond and a fast simulation would lose its period; yield instead
        # until the time has come (only ever at high --speed).
        until = time.monotonic() + wall
        await asyncio.sleep(0)
        while time.monotonic() < until:  # noqa: ASYNC110 - waiting on time, not an event
            await asyncio.sleep(0)


class VirtualClock:
    """Discrete-event time: when every sleeper waits, time jumps to the earliest wake-up.

    For tests and benchmarks of whole runs: a recipe runs as fast as the CPU allows and
    is deterministic. Only valid while nothing awaits real I/O (threads, sockets).
    """

    def __init__(self, start: float = 0.0, settle_yields: int = 5) -> None:
        self._now = start
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._settle = settle_yields
        self._driver: asyncio.Task[None] | None = None

    @property
    def speed(self) -> float:
        return float("inf")

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._heap, (self._now + max(0.0, seconds), next(self._seq), fut))
        if self._driver is None or self._driver.done():
            self._driver = loop.create_task(self._drive(), name="virtual-clock")
        await fut

    async def _drive(self) -> None:
        while self._heap:
            # Let every runnable task run until it blocks on the clock again.
            for _ in range(self._settle):
                await asyncio.sleep(0)
            while self._heap and self._heap[0][2].done():  # cancelled sleepers
                heapq.heappop(self._heap)
            if not self._heap:
                break
            wake, _, fut = heapq.heappop(self._heap)
            self._now = max(self._now, wake)
            fut.set_result(None)


class ManualClock:
    """Time moves only when its owner moves it (or something sleeps on it).

    For tests and tools that step the plant explicitly; sleeping advances the time at once.
    """

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    @property
    def speed(self) -> float:
        return float("inf")

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
