"""A step's device commands: bounded by the driver, and on wall-clock time once more."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.config import Limits
from daemon.errors import StepFailed
from daemon.machine.factory import connect_all
from daemon.steps import context
from daemon.steps.context import StepContext
from drivers.clock import Clock, ManualClock, PacedClock, ScaledClock, VirtualClock
from drivers.sim.devices import build_sim_machine
from drivers.sim.plant import Plant, PlantFault


def _context(clock: Clock, machine: Any = None) -> StepContext:
    # Only the command path is exercised: monitor and recipe are not touched.
    return StepContext(machine, clock, None, None, Limits())  # type: ignore[arg-type]


async def _forever() -> None:
    """A driver that ignores its own timeout: its request never ends."""
    await asyncio.Event().wait()


@pytest.mark.parametrize("clock", [ScaledClock(1.0), ScaledClock(50.0), PacedClock(50.0)])
async def test_a_driver_that_ignores_its_timeout_fails_the_step_on_wall_time(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(context, "CMD_TIMEOUT_S", 0.01)  # the bound: 2x, 20 ms of wall time
    ctx = _context(clock)
    with pytest.raises(StepFailed, match="lamp power failed: timeout"):
        await asyncio.wait_for(ctx.command("lamp power", _forever()), 5.0)


async def test_on_virtual_time_a_silent_device_fails_on_its_own_timeout() -> None:
    """No wall-time bound there: the simulated lamps time out on the plant's clock."""
    clock = VirtualClock()
    plant = Plant(clock)
    machine = build_sim_machine(plant)
    await connect_all(machine)
    plant.schedule_fault(PlantFault("lamps", "no_response"), clock.now())
    ctx = _context(clock, machine)
    ctx.lamps_enabled = True
    t0 = clock.now()
    with pytest.raises(StepFailed, match=r"lamp power failed: .*no response within 0.5 s"):
        await ctx.set_lamps(40.0)
    assert clock.now() - t0 == pytest.approx(context.CMD_TIMEOUT_S)
    # A command that may have reached the lamps stays the one the interlocks judge against.
    assert ctx.lamp_cmd_pct == 40.0
    assert ctx.lamp_cmd_since(t0 - 0.05) == (0.0, 40.0)


@pytest.mark.parametrize("clock", [ScaledClock(1.0), VirtualClock()])
async def test_a_cancelled_command_is_cancelled(clock: Clock) -> None:
    """Cancelling the step while it awaits a command cancels it: nothing swallows it."""
    ctx = _context(clock)
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(ctx.command("lamp power", slow()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


def _since_reference(
    log: Iterable[tuple[float, float]], now_pct: float, t: float
) -> tuple[float, float]:
    """ADR 0098's definition, over the whole log: the lowest and highest command in force at
    any time from ``t`` to now (``now_pct``: the command in force now). A command at ``t``
    itself may have come after the read: it counts as one since ``t`` (ADR 0187)."""
    low = high = now_pct
    in_force = 0.0
    for when, pct in log:
        if when < t:
            in_force = pct
        else:
            low, high = min(low, pct), max(high, pct)
    return min(low, in_force), max(high, in_force)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.0, 0.01, 0.05, 0.5, 2.5]),
            st.sampled_from([0.0, 5.0, 15.0, 40.0, 100.0]),
        ),
        max_size=120,
    ),
    st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=5),
)
def test_lamp_commands_since_a_reading_walk_back_from_the_newest(
    commands: list[tuple[float, float]], ages: list[float]
) -> None:
    clock = ManualClock(100.0)
    ctx = _context(clock)
    for dt, pct in commands:
        clock.t += dt
        ctx.note_lamp_cmd(pct)
    for age in ages:
        t = clock.t - age  # a reading from before now, or (a foreign clock) from after it
        assert ctx.lamp_cmd_since(t) == _since_reference(ctx.lamp_cmd_log, ctx.lamp_cmd_pct, t)


class _Lamps:
    """A lamp bank that takes a command at once, the time it takes on the test's clock."""

    zones = 4

    def __init__(self, clock: ManualClock, took: list[float]) -> None:
        self._clock, self._took = clock, took

    async def set_power(self, pct: list[float], timeout: float) -> None:
        self._clock.t += self._took.pop(0) if self._took else 0.0


class _Machine:
    def __init__(self, lamps: _Lamps) -> None:
        self.lamps = lamps


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.01, 0.05, 0.5]),  # clock time before the command
            st.sampled_from([0.0, 0.0, 0.02]),  # how long the lamps take to take it
            st.sampled_from([0.0, 5.0, 15.0, 40.0, 100.0]),
        ),
        max_size=60,
    ),
    st.lists(st.floats(0.0, 1.5), min_size=1, max_size=5),
)
async def test_a_lamp_command_logs_only_what_changes_an_answer(
    commands: list[tuple[float, float, float]], ages: list[float]
) -> None:
    """set_lamps leaves out the entry of a command already in force (ADR 0125): every reading
    is judged against the same lowest and highest command as with the entry, and the log
    keeps to the commands' time order (lamp_cmd_since walks it back)."""
    clock = ManualClock(100.0)
    took = [d for _, d, _ in commands]
    ctx = _context(clock, _Machine(_Lamps(clock, took)))
    ctx.lamps_enabled = True
    # The log as set_lamps kept it before ADR 0125, never trimmed: an entry of the higher of
    # the old and the new command as the command leaves, then the new one once it is taken.
    full: list[tuple[float, float]] = []
    for before, _, pct in commands:
        clock.t += before
        full.append((clock.t, max(ctx.lamp_cmd_pct, pct)))
        await ctx.set_lamps(pct)
        full.append((clock.t, pct))
        for age in ages:
            t = clock.t - age
            assert ctx.lamp_cmd_since(t) == _since_reference(full, ctx.lamp_cmd_pct, t)
    times = [when for when, _ in ctx.lamp_cmd_log]
    assert times == sorted(times)
