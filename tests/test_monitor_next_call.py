"""Monitor.call_on_next: a consumer that never waits takes each snapshot where a task would."""

from __future__ import annotations

import asyncio

from daemon.machine.monitor import Monitor
from drivers.clock import VirtualClock
from drivers.sim.devices import build_sim_machine
from drivers.sim.plant import Plant


def _monitor() -> Monitor:
    clock = VirtualClock()
    return Monitor(build_sim_machine(Plant(clock)), clock, concurrent=False)


async def test_a_callback_runs_where_a_waiting_task_would_in_the_order_of_asking() -> None:
    """Two tasks and a callback that asked in between: the callback's turn comes between the
    tasks' (the order the consumers of a snapshot see it decides what the trace records)."""
    monitor = _monitor()
    seen: list[tuple[str, float]] = []

    async def consumer(name: str) -> None:
        snap = await monitor.next()
        seen.append((name, snap.t))

    first = asyncio.create_task(consumer("first"))
    await asyncio.sleep(0)  # first is waiting

    def callback() -> None:
        assert monitor.latest is not None
        seen.append(("callback", monitor.latest.t))

    monitor.call_on_next(callback)
    last = asyncio.create_task(consumer("last"))
    await asyncio.sleep(0)
    snap = await monitor.read_once()
    await asyncio.gather(first, last)
    assert seen == [("first", snap.t), ("callback", snap.t), ("last", snap.t)]


async def test_a_callback_runs_once_and_a_withdrawn_one_not_at_all() -> None:
    monitor = _monitor()
    calls: list[str] = []
    monitor.call_on_next(lambda: calls.append("once"))
    withdrawn = monitor.call_on_next(lambda: calls.append("withdrawn"))
    withdrawn.cancel()
    await monitor.read_once()
    late = monitor.call_on_next(lambda: calls.append("cancelled after the publication"))
    await monitor.read_once()
    late.cancel()  # queued already: the loop has not run it yet
    await asyncio.sleep(0)
    await monitor.read_once()
    await asyncio.sleep(0)
    assert calls == ["once"]
