"""The event loop `bonderd serve` runs on, tuned for the 20 Hz control loop (ADR 0095).

Two things decide how late a control cycle starts besides the work on the loop itself:

- The wake-up: asyncio's epoll selector waits in whole milliseconds, rounded up, so every
  timer fires on average half a millisecond late and up to a whole one. The loop here waits
  on the epoll descriptor with ``select()``, whose timeout has microsecond resolution, then
  collects the events with a non-blocking ``epoll_wait``: same readiness, precise wake-up.
- The garbage collector: an automatic collection runs inside whichever allocation crosses
  the threshold, so a generation-1 pass (milliseconds) or a full one (tens of milliseconds
  with every module and model of the daemon to traverse) lands at random in the period,
  often on a cycle's start. :class:`PacedGc` freezes what start-up built (never garbage)
  and runs the same generational collections right after a snapshot is published, when
  the next cycle is a whole period away.
"""

from __future__ import annotations

import asyncio
import gc
import select
import selectors
from typing import Any, Final, Protocol

import structlog

log = structlog.get_logger(__name__)

# select() takes descriptors below FD_SETSIZE only; the epoll descriptor is opened with the
# loop, at start-up, far below it. Above it the plain epoll wait is used.
_FD_SETSIZE: Final = 1024
# Wall seconds between looks at the collector's counts: the control period. At speed 1 the
# allocations of one period are a few hundred objects, under threshold0 (700).
POLL_S: Final = 0.05


class _PreciseEpollSelector(selectors.EpollSelector):
    """epoll for readiness, a microsecond-resolution wait for timers."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        fd = self.fileno()
        if timeout is not None and timeout > 0 and fd < _FD_SETSIZE:
            # Readable when events are pending: wakes at the first event or at the timeout.
            try:
                select.select([fd], [], [], timeout)
            except InterruptedError:
                return []
            timeout = 0
        return super().select(timeout)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop for `bonderd serve`: asyncio's selector loop with the precise wait on Linux."""
    if not hasattr(selectors, "EpollSelector"):
        return asyncio.new_event_loop()
    return asyncio.SelectorEventLoop(_PreciseEpollSelector())


class SnapshotSource(Protocol):
    """What paces the collections: :meth:`daemon.monitor.Monitor.next`."""

    async def next(self) -> Any: ...


class PacedGc:
    """Automatic garbage collection off; the same collections, run after each snapshot.

    The thresholds are the interpreter's (``gc.get_threshold()``): a generation-0 pass once
    ``threshold0`` net allocations have accumulated, a generation-1 pass every
    ``threshold1`` of those, a full pass every ``threshold2`` generation-1 passes. Only the
    moment changes: between the snapshot and the next cycle, not inside an allocation.
    Memory is not at risk: reference counting frees everything that is not in a cycle, and
    cycles wait a period or two (a stalled monitor stops the daemon anyway).

    ``run`` restores the interpreter's state (automatic collection, nothing frozen) when it
    ends, so a test or an embedding process is left as it was.
    """

    def __init__(self, snapshots: SnapshotSource, poll_s: float = POLL_S) -> None:
        self._snapshots = snapshots
        self.poll_s = poll_s
        self.collections = [0, 0, 0]  # passes run, per generation

    @staticmethod
    def due() -> bool:
        threshold0 = gc.get_threshold()[0]
        return threshold0 > 0 and gc.get_count()[0] >= threshold0

    def collect_due(self) -> int | None:
        """Run the collection the counts call for, if any; the generation collected."""
        if not self.due():
            return None
        _, t1, t2 = gc.get_threshold()
        _, c1, c2 = gc.get_count()
        generation = 2 if c1 >= t1 and c2 >= t2 else 1 if c1 >= t1 else 0
        gc.collect(generation)
        self.collections[generation] += 1
        return generation

    async def run(self) -> None:
        """Freeze start-up, take over the collections; cancel to stop."""
        was_enabled = gc.isenabled()
        # Everything alive now (modules, models, the machine, the daemon's objects) lives
        # as long as the process: out of every future traversal.
        gc.freeze()
        gc.disable()
        log.info("gc_paced", frozen=gc.get_freeze_count(), thresholds=gc.get_threshold())
        try:
            while True:
                # The counts are looked at on the wall clock, not at every snapshot: a paced
                # simulation publishes a thousand snapshots a second, and waking for each
                # would slow it down.
                await asyncio.sleep(self.poll_s)
                if not self.due():
                    continue
                await self._snapshots.next()
                # Behind the consumers the same snapshot woke (interlocks, steps, trace):
                # their reaction comes first, the collection after.
                await asyncio.sleep(0)
                self.collect_due()
        finally:
            gc.unfreeze()
            if was_enabled:
                gc.enable()
