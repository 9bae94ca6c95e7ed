"""The plant's fault table: which fault kinds each device accepts, a fault as the plant applies
it, and the faults in effect. (The scenario files that schedule faults: ``drivers.sim.faults``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

# Which fault kinds each device accepts. "tc.<channel>" stands for every thermocouple channel
# and "lamps.z<n>" for every lamp zone; the plant resolves them against its own channels and
# zones. The scenario loader validates files against this same table.
FAULT_KINDS: Final[dict[str, frozenset[str]]] = {
    "tc.<channel>": frozenset({"open", "stuck", "drift", "no_response"}),
    "tc": frozenset({"no_response"}),
    "gauge": frozenset({"fail", "stuck", "no_response"}),
    "chamber": frozenset({"leak", "tear"}),
    "film": frozenset({"tear"}),
    # uneven: the film presses one chip of a panel with only ``value`` of the full pressure
    # (a wrinkle, a particle under the film): that site conducts less to the component.
    "film.site_<n>": frozenset({"uneven"}),
    "chiller": frozenset({"fail", "no_response"}),
    "pump": frozenset({"fail", "no_response"}),
    "lamps": frozenset({"stuck_on", "fail", "no_response"}),
    "lamps.z<n>": frozenset({"stuck_on", "fail", "no_response"}),
    "o2": frozenset({"fail", "stuck", "no_response"}),
    "dio": frozenset({"estop", "door_open", "no_response"}),
    # stall: following error — the stage stops following its command but reports busy.
    "zstage": frozenset({"fail", "stall", "no_response"}),
    # fail: the UV lamp goes out (output 0, shutter closed), also in the middle of an exposure.
    "uv": frozenset({"fail", "no_response"}),
    # fail: the hold loses its vacuum (part not sealing, line leak): the switch opens.
    "chuck_vacuum": frozenset({"fail"}),
    "support_vacuum": frozenset({"fail"}),
    "dispenser": frozenset({"fail", "no_response"}),
    "valves": frozenset({"no_response"}),
}

# What the fault's ``value`` means per kind. "required": must be given; "optional": may be
# given (stuck: the frozen reading instead of the reading when the fault fires; stuck_on: the
# stuck output %, default 100); kinds not listed take no value.
FAULT_VALUE_REQUIRED: Final = frozenset({"drift", "leak", "uneven"})
FAULT_VALUE_OPTIONAL: Final = frozenset({"stuck", "stuck_on"})


@dataclass(frozen=True, slots=True)
class PlantFault:
    """A fault as the plant applies it. ``value`` None = not given (see FAULT_VALUE_*)."""

    device: str
    kind: str
    value: float | None = None


class SupportsPlantFault(Protocol):
    def to_plant_fault(self) -> PlantFault: ...


@dataclass(frozen=True, slots=True)
class TcFault:
    kind: str  # open | stuck | drift | no_response
    since: float  # plant time the fault fired
    value: float  # stuck: the frozen reading; drift: °C/s; else 0
    last_value: float  # the channel's reading when the fault fired (no_response keeps it)


@dataclass(slots=True)
class ActiveFaults:
    """The faults in effect on a plant (``Plant.clear_faults`` starts a new one)."""

    tc: dict[str, TcFault] = field(default_factory=dict)
    unresponsive: set[str] = field(default_factory=set)
    gauge: str | None = None  # "fail" | "stuck"
    gauge_stuck_mbar: float = 0.0
    o2: str | None = None  # "fail" | "stuck"
    o2_stuck_ppm: float = 0.0
    extra_leak_mbar_l_s: float = 0.0
    torn: bool = False
    chiller_failed: bool = False
    pump_tripped: bool = False
    lamp_stuck_pct: dict[int, float] = field(default_factory=dict)
    lamp_dead: set[int] = field(default_factory=set)
    estop: bool = False
    door_open: bool = False
    zstage_failed: bool = False
    zstage_stalled: bool = False
    uv_failed: bool = False
    dispenser_failed: bool = False
    hold_failed: set[str] = field(default_factory=set)  # OUT_CHUCK_VACUUM / OUT_SUPPORT_VACUUM


def fault_device_key(device: str, zones: int, channels: Sequence[str]) -> str | None:
    """The FAULT_KINDS key a device name falls under, or None if it names nothing known."""
    if device in FAULT_KINDS and "<" not in device:
        return device
    if device.startswith("tc."):
        return "tc.<channel>" if device[3:] in channels else None
    if device.startswith("film.site_"):
        n = device[10:]
        return "film.site_<n>" if n.isdigit() and len(n) <= 3 else None
    if device.startswith("lamps.z"):
        n = device[7:]
        if n.isdigit() and not n.startswith("0") and 1 <= int(n) <= zones:
            return "lamps.z<n>"
    return None
