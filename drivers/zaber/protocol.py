"""Zaber ASCII protocol: commands and replies (Zaber "ASCII Protocol Manual").

A command is ``/<device> <axis> <command> [data]`` terminated by LF; a reply is
``@<device 2 digits> <axis> <OK|RJ> <BUSY|IDLE> <warning flag> <data>`` terminated by CR LF.
The warning flag is ``--`` when there is none, otherwise the highest-priority flag: ``F*``
are faults (the axis stopped or cannot move), ``W*`` warnings, ``N*`` notices. A rejected
command (``RJ``) carries the reason as its data (``BADDATA``, ``BADCOMMAND``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# Warning flags (manual, "Warning Flags"); F = fault, W = warning, N = notice.
FLAGS: Final = {
    "FD": "driver disabled",
    "FQ": "encoder error",
    "FS": "stalled and stopped",
    "FT": "excessive twist",
    "FB": "stream bounds error",
    "FP": "interpolated path deviation",
    "FE": "limit error",
    "FM": "peripheral hardware fault",
    "WH": "device not homed (limit switch)",
    "WL": "unexpected limit trigger",
    "WP": "invalid calibration type",
    "WV": "voltage out of range",
    "WT": "system temperature high",
    "WM": "displaced when stationary",
    "WR": "no reference position (not homed)",
    "NC": "manual control",
    "NI": "command interrupted",
    "ND": "stream discontinuity",
    "NU": "setting update pending",
    "NJ": "joystick calibrating",
}
NO_FLAG: Final = "--"
NOT_HOMED_FLAGS: Final = frozenset({"WR", "WH"})

# Speed and acceleration in the device's own units (manual, "maxspeed" and "accel" settings):
# maxspeed data = microsteps/s x 1.6384; accel data = microsteps/s^2 x 1.6384 / 10000.
SPEED_UNIT: Final = 1.6384
ACCEL_UNIT: Final = 1.6384 / 10000.0


@dataclass(frozen=True, slots=True)
class Reply:
    device: int
    axis: int
    ok: bool  # OK, or RJ (rejected)
    busy: bool
    flag: str  # "--" or a warning flag
    data: str

    @property
    def fault(self) -> bool:
        return self.flag.startswith("F")


def command(device: int, axis: int, text: str) -> bytes:
    return f"/{device} {axis} {text}\n".encode("ascii")


def parse_reply(line: str) -> Reply:
    """Parse one reply line (without CR LF); ValueError if it is not a reply."""
    parts = line.strip().split(" ", 5)
    if len(parts) < 5 or not parts[0].startswith("@"):
        raise ValueError(f"not a Zaber reply: {line!r}")
    dev, axis, flag_ok, status, flag = parts[:5]
    if flag_ok not in ("OK", "RJ") or status not in ("BUSY", "IDLE"):
        raise ValueError(f"not a Zaber reply: {line!r}")
    if flag != NO_FLAG and (len(flag) != 2 or not flag.isalpha() or not flag.isupper()):
        raise ValueError(f"bad warning flag in {line!r}")
    return Reply(
        device=int(dev[1:]),
        axis=int(axis),
        ok=flag_ok == "OK",
        busy=status == "BUSY",
        flag=flag,
        data=parts[5] if len(parts) > 5 else "",
    )
