"""Run guards: conditions that stop a run at once, checked on every snapshot.

These are the executor's own last-line checks on the run it drives; the independent
interlock task (a later layer) does not replace them and they do not replace it.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.monitor import Snapshot
from drivers.protocols import IN_DOOR_CLOSED, IN_ESTOP_OK
from drivers.reading import Status

# Devices without which a run cannot be watched; losing one stops the run.
CRITICAL_DEVICES = ("tc", "gauge", "dio", "lamps")


@dataclass(frozen=True, slots=True)
class Violation:
    code: str
    message: str


def check(
    snap: Snapshot, *, chip_max_c: float, component_max_c: float, heating: bool
) -> Violation | None:
    for device in CRITICAL_DEVICES:
        if device in snap.errors:
            return Violation("device_lost", f"{device} not answering: {snap.errors[device]}")
    for channel, reading in snap.temps.items():
        if reading.status is Status.FAULT:
            why = reading.detail or "fault"
            return Violation("tc_fault", f"thermocouple '{channel}' failed: {why}")
    if snap.inputs is not None:
        if not snap.inputs.get(IN_ESTOP_OK, False):
            return Violation("estop", "E-stop pressed")
        if not snap.inputs.get(IN_DOOR_CLOSED, False):
            return Violation("door_open", "door opened during the run")
    chip = snap.temp("chip")
    if chip is not None and chip > chip_max_c:
        return Violation("chip_overtemp", f"chip {chip:.1f} °C above the limit {chip_max_c:g} °C")
    comp = [r.value for ch, r in snap.temps.items() if ch.startswith("component") and r.ok]
    if heating and comp and sum(comp) / len(comp) > component_max_c:
        avg = sum(comp) / len(comp)
        return Violation(
            "component_tg",
            f"component average {avg:.1f} °C above Tg − margin ({component_max_c:g} °C)",
        )
    return None
