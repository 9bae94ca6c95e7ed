"""The event loop `bonderd serve` runs on (daemon/app/event_loop.py, ADR 0095)."""

from __future__ import annotations

import asyncio
import select
import selectors
import socket
from typing import Any

import pytest

from daemon.app.event_loop import _PreciseEpollSelector, new_event_loop

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
        # Due times from one reading of the clock: with call_later each would count from its
        # own line, and a host busy enough to pause between the lines reorders them itself.
        now = loop.time()
        loop.call_at(now + 0.003, order.append, "3 ms")
        loop.call_at(now + 0.0015, order.append, "1.5 ms")
        loop.call_at(now + 0.0005, order.append, "0.5 ms")

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
