"""The run-state transition table (CONTRACT.md states)."""

from __future__ import annotations

import itertools

import pytest

from daemon.run.run_state import TRANSITIONS, RunState, TransitionRefused, Trigger, next_state


@pytest.mark.parametrize(
    ("path", "end"),
    [
        ([Trigger.START, Trigger.COMPLETE], RunState.IDLE),
        ([Trigger.START, Trigger.HOLD, Trigger.HOLD_REACHED, Trigger.RESUME], RunState.RUNNING),
        ([Trigger.START, Trigger.HOLD, Trigger.RESUME], RunState.RUNNING),
        ([Trigger.START, Trigger.ABORT, Trigger.SAFE, Trigger.RESET], RunState.IDLE),
        ([Trigger.START, Trigger.HOLD, Trigger.HOLD_REACHED, Trigger.ABORT], RunState.ABORTING),
    ],
)
def test_paths_an_operator_takes(path: list[Trigger], end: RunState) -> None:
    state = RunState.IDLE
    for trigger in path:
        state = next_state(state, trigger)
    assert state is end


def test_every_pair_not_in_the_table_is_refused_with_a_reason() -> None:
    for state, trigger in itertools.product(RunState, Trigger):
        if (state, trigger) in TRANSITIONS:
            continue
        with pytest.raises(TransitionRefused) as err:
            next_state(state, trigger)
        assert state.value in str(err.value) and trigger.value in str(err.value)


def test_aborted_needs_an_operator_reset_before_a_new_start() -> None:
    with pytest.raises(TransitionRefused):
        next_state(RunState.ABORTED, Trigger.START)
    assert next_state(RunState.ABORTED, Trigger.RESET) is RunState.IDLE
