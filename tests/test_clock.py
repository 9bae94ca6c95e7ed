"""Clocks: --speed scales simulated time; virtual time jumps but keeps order."""

from __future__ import annotations

import asyncio

import pytest

from drivers import clock as clock_mod
from drivers.clock import ScaledClock, VirtualClock


class FakeWall:
    """monotonic() under the test's control; asyncio.sleep advances it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.t = 100.0
        self.slept: list[float] = []
        real_sleep = asyncio.sleep

        async def fake_sleep(seconds: float) -> None:
            self.slept.append(seconds)
            self.t += seconds
            await real_sleep(0)

        monkeypatch.setattr(clock_mod.time, "monotonic", lambda: self.t)
        monkeypatch.setattr(clock_mod.asyncio, "sleep", fake_sleep)


def test_speed_1_is_real_time_even_across_a_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    wall = FakeWall(monkeypatch)
    real = ScaledClock(1.0)
    wall.t += 2.5
    assert real.now() == pytest.approx(2.5)


def test_scaled_clock_runs_speed_times_faster_while_observed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wall = FakeWall(monkeypatch)
    fast = ScaledClock(100.0)
    for _ in range(2500):  # observed every millisecond, as the monitor loop does
        wall.t += 0.001
        fast.now()
    assert fast.now() == pytest.approx(250.0)


def test_a_host_stall_does_not_jump_the_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    wall = FakeWall(monkeypatch)
    fast = ScaledClock(100.0)
    wall.t += 0.040  # 40 ms nobody planned: would be 4 s of unwatched lamps
    assert fast.now() == pytest.approx(0.2)  # at most 2 ms of wall counts


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan"), float("inf")])
def test_scaled_clock_refuses_a_speed_that_is_not_positive(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        ScaledClock(speed)


async def test_scaled_clock_sleep_waits_scaled_wall_time_in_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wall = FakeWall(monkeypatch)
    clock = ScaledClock(10.0)
    await clock.sleep(30.0)  # a planned sleep counts in full, however long
    assert wall.slept == [pytest.approx(3.0)]
    assert clock.now() == pytest.approx(30.0)


async def test_virtual_clock_wakes_sleepers_in_time_order_without_waiting() -> None:
    clock = VirtualClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    await asyncio.gather(sleeper("late", 3600.0), sleeper("early", 0.5), sleeper("mid", 60.0))
    assert woke == [("early", 0.5), ("mid", 60.0), ("late", 3600.0)]


async def test_virtual_clock_skips_cancelled_sleepers() -> None:
    clock = VirtualClock()
    task = asyncio.ensure_future(clock.sleep(10.0))
    await asyncio.sleep(0)
    task.cancel()
    await clock.sleep(20.0)
    assert clock.now() == 20.0
    assert task.cancelled()
