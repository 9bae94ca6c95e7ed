"""The event loop `bonderd serve` runs on, tuned for the 20 Hz control loop (ADR 0095).

asyncio's epoll selector waits in whole milliseconds, rounded up, so every timer fires on
average half a millisecond late and up to a whole one: the control loop's median lateness.
The loop here waits on the epoll descriptor with ``select()``, whose timeout has
microsecond resolution, then collects the events with a non-blocking ``epoll_wait``: same
readiness, same callbacks, a precise wake-up.
"""

from __future__ import annotations

import asyncio
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
