"""Exceptions of the run executor."""

from __future__ import annotations


class StepFailed(Exception):
    """A step could not reach its goal; the run ends in the safe state with this reason."""


class SafetyStop(Exception):
    """A guard saw an unsafe condition during a run (E-stop, open thermocouple, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CommandRefused(Exception):
    """An operator command is not allowed now; the message says why."""
