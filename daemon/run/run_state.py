"""Run states and the one table of transitions between them (CONTRACT.md `state`)."""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    HOLDING = "holding"  # a hold was asked; the run goes on to the next safe hold point
    HELD = "held"
    ABORTING = "aborting"  # the safe-state sequence is in progress
    ABORTED = "aborted"  # safe; an operator reset returns to idle


class Trigger(StrEnum):
    START = "start"
    HOLD = "hold"
    HOLD_REACHED = "hold_reached"
    RESUME = "resume"
    ABORT = "abort"
    SAFE = "safe"
    COMPLETE = "complete"
    RESET = "reset"


ACTIVE = (RunState.RUNNING, RunState.HOLDING, RunState.HELD)

TRANSITIONS: dict[tuple[RunState, Trigger], RunState] = {
    (RunState.IDLE, Trigger.START): RunState.RUNNING,
    (RunState.RUNNING, Trigger.HOLD): RunState.HOLDING,
    (RunState.HOLDING, Trigger.HOLD_REACHED): RunState.HELD,
    (RunState.HOLDING, Trigger.RESUME): RunState.RUNNING,
    (RunState.HELD, Trigger.RESUME): RunState.RUNNING,
    (RunState.RUNNING, Trigger.COMPLETE): RunState.IDLE,
    (RunState.HOLDING, Trigger.COMPLETE): RunState.IDLE,
    **{(s, Trigger.ABORT): RunState.ABORTING for s in ACTIVE},
    (RunState.ABORTING, Trigger.SAFE): RunState.ABORTED,
    (RunState.ABORTED, Trigger.RESET): RunState.IDLE,
}


class TransitionRefused(Exception):
    def __init__(self, state: RunState, trigger: Trigger) -> None:
        super().__init__(f"'{trigger}' is not allowed while the machine is {state}")
        self.state = state
        self.trigger = trigger


def next_state(state: RunState, trigger: Trigger) -> RunState:
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise TransitionRefused(state, trigger) from None
