"""What a rule finds: its code, what follows (trip, suspend, warn) and the operator's message."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    TRIP = "trip"
    SUSPEND = "suspend"
    WARN = "warn"


SEVERITY = {Action.TRIP: "alarm", Action.SUSPEND: "warning", Action.WARN: "warning"}


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    action: Action
    message: str
    # The fault itself forbids holding the vacuum in the safe state (air is coming in through
    # a tear or leak): vent with N2 at once instead of keeping a vacuum that cannot be kept.
    vent_now: bool = False
