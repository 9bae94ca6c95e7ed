"""The event loop `bonderd serve` runs on (daemon/event_loop.py, ADR 0095)."""

from __future__ import annotations

import asyncio
import gc
import select
import selectors
import socket
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from daemon.event_loop import PacedGc, _PreciseEpollSelector, new_event_loop

pytestmark = pytest.mark.skipif(
    not hasattr(selectors, "EpollSelector"), reason="the precise wait is built on epoll (Linux)"
)


def test_a_sub_millisecond_timeout_is_waited_as_such_not_rounded_up_to_a_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float | None] = []
    real_select = select.select

    def spy(r: Any, w: Any, x: Any, timeout: float | None = None) -> Any:
        waits.append(timeout)
        return real_select(r, w, x, timeout)

    monkeypatch.setattr(select, "select", spy)
    sel = _PreciseEpollSelector()
    try:
        assert sel.select(0.0003) == []
        assert waits == [0.0003]  # epoll_wait alone would have slept a whole millisecond
        sel.select(0)  # a poll: no wait at all, straight to epoll
        assert waits == [0.0003]
    finally:
        sel.close()


def test_readiness_is_still_reported_by_epoll() -> None:
    a, b = socket.socketpair()
    sel = _PreciseEpollSelector()
    try:
        sel.register(a, selectors.EVENT_READ, "a")
        assert sel.select(0.01) == []
        b.send(b"x")
        ready = sel.select(5.0)  # returns at once: the event, not the timeout
        assert [(key.data, events) for key, events in ready] == [("a", selectors.EVENT_READ)]
    finally:
        sel.close()
        a.close()
        b.close()


def test_the_serve_loop_runs_timers_in_order_and_does_io() -> None:
    async def main() -> list[str]:
        order: list[str] = []
        loop = asyncio.get_running_loop()
        loop.call_later(0.003, order.append, "3 ms")
        loop.call_later(0.0015, order.append, "1.5 ms")
        loop.call_later(0.0005, order.append, "0.5 ms")

        async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(await r.readline())
            await w.drain()
            w.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        order.append((await reader.readline()).decode().strip())
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.005)
        return order

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        order = runner.run(main())
    timers = [o for o in order if o.endswith("ms")]
    assert timers == ["0.5 ms", "1.5 ms", "3 ms"]
    assert "ping" in order


# ---- paced garbage collection ------------------------------------------------------------


@pytest.fixture
def gc_state() -> Iterator[None]:
    threshold = gc.get_threshold()
    enabled = gc.isenabled()
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
        if enabled:
            gc.enable()
        else:
            gc.disable()


class _Snapshots:
    """A monitor stand-in: ``next()`` returns when the test publishes a snapshot."""

    def __init__(self) -> None:
        self._published = asyncio.Event()
        self.waiting = asyncio.Event()

    async def next(self) -> object:
        self.waiting.set()
        await self._published.wait()
        self._published.clear()
        return object()

    async def publish(self) -> None:
        self.waiting.clear()
        self._published.set()
        for _ in range(5):  # the consumer wakes, yields once behind the others, collects
            await asyncio.sleep(0)


class _Cycle:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_collections_follow_the_interpreters_generational_thresholds(gc_state: None) -> None:
    gc.disable()
    paced = PacedGc(_Snapshots())
    gc.set_threshold(100, 2, 2)
    gc.collect()
    assert paced.collect_due() is None  # nothing allocated yet
    generations = []
    kept: list[list[object]] = []
    for _ in range(9):
        kept.extend([] for _ in range(150))  # 150 net allocations: over threshold0
        generations.append(paced.collect_due())
    # gen0, gen0, then gen1 (two gen0 passes since the last gen1), ..., and a full pass
    # in place of the gen1 pass once two gen1 passes have accumulated.
    assert generations == [0, 0, 1, 0, 0, 1, 0, 0, 2]
    assert paced.collections == [6, 2, 1]


def test_automatic_collection_is_off_while_paced_and_restored_after(gc_state: None) -> None:
    gc.enable()
    gc.set_threshold(50, 10, 10)

    async def main() -> None:
        snapshots = _Snapshots()
        paced = PacedGc(snapshots, poll_s=0.001)
        task = asyncio.create_task(paced.run())
        await asyncio.sleep(0.01)
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0  # start-up's objects are out of every traversal
        assert not snapshots.waiting.is_set()  # nothing due: not waiting for a snapshot

        garbage = _Cycle()
        gone = weakref.ref(garbage)
        del garbage
        churn: list[list[object]] = [[] for _ in range(200)]  # past threshold0
        await snapshots.waiting.wait()  # due: waits for the next snapshot...
        assert gone() is not None  # ...and no automatic pass ran meanwhile
        await snapshots.publish()
        assert gone() is None  # collected right after the snapshot
        assert sum(paced.collections) >= 1
        assert len(churn) == 200

        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
