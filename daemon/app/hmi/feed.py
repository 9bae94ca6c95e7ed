"""Live frames to every open page, each page behind a bounded queue.

A frame is encoded once and the same bytes go to every page. A page that stops reading
(a stalled browser, a slow link) must not make the daemon hold more and more frames for it:
its queue holds at most ``depth`` frames; when it is full the queue is emptied and one
``resync`` message takes its place, which tells the page to fetch the run so far from the
records again. Memory per page is bounded by ``depth`` frames, whatever the page does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

DEFAULT_DEPTH: Final = 32  # frames: 16 s at the default 2 Hz, 1.6 s at 20 Hz
RESYNC: Final = b"event: resync\ndata: {}\n\n"


@dataclass(eq=False)
class Subscriber:
    """One open page's stream: the frames not yet written to it."""

    depth: int
    queue: asyncio.Queue[bytes] = field(init=False)
    dropped: int = 0  # frames thrown away because the page did not keep up
    resyncs: int = 0

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.depth)

    def offer(self, message: bytes) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # Never wait for a page and never grow: drop what it has not read, and have it
            # catch up from the records (the frames it missed are in the trace).
            while not self.queue.empty():
                self.queue.get_nowait()
                self.dropped += 1
            self.dropped += 1
            self.resyncs += 1
            self.queue.put_nowait(RESYNC)

    async def next(self) -> bytes:
        return await self.queue.get()


class Feed:
    """The set of open streams; ``publish`` hands one encoded message to each."""

    def __init__(self, depth: int = DEFAULT_DEPTH) -> None:
        if depth < 2:
            raise ValueError(f"depth must be >= 2 (a frame and a resync), got {depth}")
        self.depth = depth
        self._subscribers: set[Subscriber] = set()

    def subscribe(self) -> Subscriber:
        sub = Subscriber(self.depth)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    def __len__(self) -> int:
        return len(self._subscribers)

    def publish(self, message: bytes) -> None:
        for sub in self._subscribers:
            sub.offer(message)


def sse(event: str, data: str) -> bytes:
    """One Server-Sent Events message (``data`` is one line of JSON, never a newline)."""
    return f"event: {event}\ndata: {data}\n\n".encode()
