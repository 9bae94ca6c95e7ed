"""The event loop `bonderd serve` runs on, tuned for the 20 Hz control loop (ADR 0095).

Two things decide how late a control cycle starts besides the work on the loop itself:

- The wake-up: asyncio's epoll selector waits in whole milliseconds, rounded up, so every
  timer fires on average half a millisecond late and up to a whole one. The loop here waits
  on the epoll descriptor with ``select()``, whose timeout has microsecond resolution, then
  collects the events with a non-blocking ``epoll_wait``: same readiness, precise wake-up.
- The garbage collector: an automatic collection runs inside whichever allocation crosses
  the threshold, at a random point of the period; a full one traversed every module and
  model of the daemon (~30 ms). :func:`freeze_startup` takes what start-up built (never
  garbage) out of every later collection.
"""

from __future__ import annotations

import asyncio
import gc
import select
import selectors
from typing import Final

import structlog

log = structlog.get_logger(__name__)

# select() takes descriptors below FD_SETSIZE only; the epoll descriptor is opened with the
# loop, at start-up, far below it. Above it the plain epoll wait is used.
_FD_SETSIZE: Final = 1024


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


def freeze_startup() -> int:
    """Collect start-up's garbage, then freeze what is left; returns how many objects.

    What is alive once start-up is done (modules, pydantic models, the machine, the daemon's
    objects) lives as long as the process. Frozen, it is out of every later collection: a
    full pass traverses only what was created since, milliseconds instead of ~30 ms, and
    the generation-1 passes get cheaper too. The collector otherwise runs as the
    interpreter runs it. Undo with ``gc.unfreeze()``.
    """
    gc.collect()  # garbage frozen would never be freed
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("gc_startup_frozen", objects=frozen)
    return frozen
