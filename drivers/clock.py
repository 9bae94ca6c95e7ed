"""Clocks: real time, scaled time (``--speed``), and virtual time for tests.

Everything that waits or timestamps in the daemon and the plant goes through a Clock, so
a ten-minute recipe can run in seconds with the same code.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Sized
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the clock started (process time, not wall-clock date)."""

    async def sleep(self, seconds: float) -> None: ...

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second (1 for real time)."""


_SELECTOR_RESOLUTION_S = 0.001
_MAX_STALL_WALL_S = 0.002  # unplanned wall time one observation of a scaled clock absorbs


class ScaledClock:
    """Monotonic time multiplied by ``speed``; speed 1 is real time.

    Above speed 1 the simulated time does not jump over a stall of the host (a busy
    neighbour, a page fault, a garbage collection): at 100x a 40 ms stall would be 4 s in
    which the simulated lamps burn at their last power with nobody looking, something the
    real machine, whose controller is never starved, cannot see. A sleeper waking up counts
    the wait it planned in full; any other wall time between two looks at the clock counts
    for at most ``_MAX_STALL_WALL_S``. The simulation then runs a little slower than
    ``speed``, never inconsistently. Real time (speed 1) is never altered.
    """

    def __init__(self, speed: float = 1.0) -> None:
        if not 0 < speed < float("inf"):
            raise ValueError(f"speed must be > 0, got {speed}")
        self._speed = speed
        self._last_wall = time.monotonic()
        self._sim = 0.0

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        return self._observe(None)

    def _observe(self, planned_until: float | None) -> float:
        wall = time.monotonic()
        elapsed = max(0.0, wall - self._last_wall)
        if self._speed > 1.0:
            allowed = _MAX_STALL_WALL_S
            if planned_until is not None:
                allowed = max(allowed, planned_until - self._last_wall)
            elapsed = min(elapsed, allowed)
        self._last_wall = wall
        self._sim += elapsed * self._speed
        return self._sim

    async def sleep(self, seconds: float) -> None:
        target = self.now() + max(0.0, seconds)
        while (remaining := target - self.now()) > 0:
            wall = remaining / self._speed
            wake = self._last_wall + wall
            if wall >= _SELECTOR_RESOLUTION_S:
                await asyncio.sleep(wall)
            else:
                # The selector waits in whole milliseconds, so a shorter sleep would last a
                # full millisecond and a fast simulation would lose its period: yield.
                await asyncio.sleep(0)
            self._observe(wake)


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
        entry = (self._now + max(0.0, seconds), next(self._seq), fut)
        heapq.heappush(self._heap, entry)
        if self._heap[0] is entry:
            self._earliest_changed()
        if self._driver is None or self._driver.done():
            self._driver = loop.create_task(self._drive(), name="virtual-clock")
        await fut

    def _earliest_changed(self) -> None:
        """A sleeper now wakes before any other (PacedClock waits on the wall for it)."""

    async def _drive(self) -> None:
        # The loop's ready queue (CPython's asyncio; absent elsewhere: then every yield runs).
        ready: Sized | None = getattr(asyncio.get_running_loop(), "_ready", None)
        while self._heap:
            # Let every runnable task run until it blocks on the clock again: up to
            # ``settle`` loop iterations, fewer once nothing else is ready to run (a yield
            # then runs nothing; at 20 Hz the spare ones were a tenth of a run's CPU).
            for _ in range(self._settle):
                await asyncio.sleep(0)
                if ready is not None and not ready:
                    break
            while self._heap and self._heap[0][2].done():  # cancelled sleepers
                heapq.heappop(self._heap)
            if not self._heap:
                break
            wake, _, fut = heapq.heappop(self._heap)
            self._now = max(self._now, wake)
            fut.set_result(None)


class PacedClock(VirtualClock):
    """Discrete-event time paced to at most ``speed`` times real time: ``--sim --speed X``.

    Like VirtualClock, time moves only when every task waits on the clock, so a busy or
    stalled host slows the simulation down instead of letting simulated time run past a
    control loop that did not get to run; each wake-up is then held back until its wall
    time has come. When the host cannot keep up, the schedule slips (no catch-up burst).
    Real I/O may run alongside: the clock keeps moving, at no more than ``speed``.
    """

    def __init__(self, speed: float, start: float = 0.0) -> None:
        if not 0 < speed < float("inf"):
            raise ValueError(f"speed must be > 0, got {speed}")
        super().__init__(start)
        self._pace = speed
        self._wall0 = time.monotonic() - start / speed
        self._interrupt = asyncio.Event()

    def _earliest_changed(self) -> None:
        self._interrupt.set()

    @property
    def speed(self) -> float:
        return self._pace

    async def _drive(self) -> None:
        while self._heap:
            for _ in range(self._settle):
                await asyncio.sleep(0)
            while self._heap and self._heap[0][2].done():
                heapq.heappop(self._heap)
            if not self._heap:
                break
            wake = self._heap[0][0]
            delay = self._wall0 + wake / self._pace - time.monotonic()
            if delay >= _SELECTOR_RESOLUTION_S:
                # Wait on the wall, unless an earlier wake-up is asked for meanwhile.
                self._interrupt.clear()
                try:
                    async with asyncio.timeout(delay):
                        await self._interrupt.wait()
                except TimeoutError:
                    pass
                continue
            if delay < -_MAX_STALL_WALL_S:
                self._wall0 -= delay  # behind schedule: slip, do not burst to catch up
            _, _, fut = heapq.heappop(self._heap)
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
