"""Clocks: --speed scales simulated time; virtual time jumps but keeps order."""

from __future__ import annotations

import asyncio

import pytest

from drivers import clock as clock_mod
from drivers.clock import ScaledClock, VirtualClock


def test_scaled_clock_runs_speed_times_faster_than_the_wall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wall = [100.0]
    monkeypatch.setattr(clock_mod.time, "monotonic", lambda: wall[0])
    real, fast = ScaledClock(1.0), ScaledClock(100.0)
    wall[0] += 2.5
    assert real.now() == pytest.approx(2.5)  # --speed 1 is real time
    assert fast.now() == pytest.approx(250.0)


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan"), float("inf")])
def test_scaled_clock_refuses_a_speed_that_is_not_positive(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        ScaledClock(speed)


async def test_scaled_clock_sleep_waits_scaled_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        waited.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(clock_mod.asyncio, "sleep", fake_sleep)
    await ScaledClock(10.0).sleep(0.5)
    assert waited == [pytest.approx(0.05)]


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
