"""Where a finished run's trace is judged (daemon/run/executor.py: judge, ADR 0097)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, cast

import pytest

import daemon.run.executor as executor_module
from daemon.judge.evaluate import Judgement
from daemon.judge.types import Metrics, StepOutcome
from daemon.recipe.model import AnyRecipe
from daemon.run.executor import judge
from daemon.store.trace import Sample
from drivers.clock import Clock, ScaledClock, VirtualClock


def _judged_on(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> tuple[int, int]:
    seen: list[int] = []
    args: list[tuple[Any, ...]] = []

    def spy(*a: Any) -> Judgement:
        seen.append(threading.get_ident())
        args.append(a)
        return Judgement([], {"tracking_rms_c": 0.1})

    monkeypatch.setattr(executor_module, "judge_run", spy)
    recipe = cast(AnyRecipe, object())
    samples: list[Sample] = []
    outcomes: list[StepOutcome] = []

    async def main() -> tuple[int, int]:
        judgement = await judge(clock, recipe, samples, outcomes)
        assert judgement == Judgement([], {"tracking_rms_c": 0.1})  # passed through as is
        return threading.get_ident(), seen[0]

    loop_thread, judged = asyncio.run(main())
    assert args == [(recipe, samples, outcomes)]  # the very trace, not a copy
    return loop_thread, judged


def test_on_wall_clock_time_the_trace_is_judged_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop_thread, judged = _judged_on(monkeypatch, ScaledClock(1.0))
    assert judged != loop_thread


def test_under_virtual_time_it_is_judged_inline_so_the_run_stays_deterministic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop_thread, judged = _judged_on(monkeypatch, VirtualClock())
    assert judged == loop_thread


def test_a_stop_while_judging_still_gets_the_judgement_then_ends_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()

    def slow(*_a: Any) -> Judgement:
        release.wait(10.0)
        return Judgement([], {"tracking_rms_c": 0.2})

    monkeypatch.setattr(executor_module, "judge_run", slow)
    recorded: list[Metrics] = []

    async def finish_the_run() -> None:  # as Executor.run: judge, then close the record
        judgement = await judge(ScaledClock(1.0), cast(AnyRecipe, object()), [], [])
        recorded.append(judgement.metrics)

    async def main() -> None:
        task = asyncio.create_task(finish_the_run())
        await asyncio.sleep(0.01)
        task.cancel()  # the daemon stops while the thread judges
        await asyncio.sleep(0.01)
        assert not task.done()  # the judgement is still awaited
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert recorded == [{"tracking_rms_c": 0.2}]  # the record was closed before it ended
