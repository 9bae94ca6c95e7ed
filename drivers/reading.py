"""A reading from a device: a value, when it was taken, and whether it can be trusted."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    STALE = "stale"  # the device answered, but the value is old or not being measured
    FAULT = "fault"  # the value is known to be wrong (open thermocouple, sensor error, ...)


# Not frozen: a reading is built ~15 times per control cycle (a frozen dataclass's __init__
# costs 4x a plain one), and nothing mutates or hashes one; they are values (docs/adr/0085).
@dataclass(slots=True)
class Reading:
    value: float
    ts: float  # clock time (seconds) at which the value was measured
    status: Status = Status.OK
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is Status.OK
