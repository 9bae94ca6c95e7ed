"""How far each conformance check is from its limits: the margin of a prediction.

A check records its value and its limit as the judge states them (a number, or a window
written "[lo, hi]"); whether the number is a ceiling, a floor or the centre of a tolerance
band is the check's meaning, declared here once per check for every kind the judge has. A
check this table does not know has no margin (None): a new check must be added here to be
predicted with a margin, never guessed at.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from daemon.judge.lead_lift import SPEED_TOLERANCE, VOLUME_TOLERANCE
from daemon.recipe.model import AnyRecipe, LeadLiftStep

Sense = Literal["max", "min", "window", "band", "order"]

# check name (before any "@step") -> what its limit bounds, and the value's unit
CHECKS: Final[Mapping[str, tuple[Sense, str]]] = {
    "component_below_tg": ("max", "°C"),
    "carrier_below_limit": ("max", "°C"),
    "chuck_below_tg": ("max", "°C"),
    "joints_below_solidus": ("max", "°C"),
    "chip_hotter_than_component": ("min", "°C"),
    "vacuum_held": ("max", "mbar"),
    "o2_ppm": ("max", "ppm"),
    "o2_partial_pressure": ("max", "mbar"),
    "purge_before_pump_down": ("order", ""),
    "peak_in_window": ("window", "°C"),
    "time_above_liquidus": ("window", "s"),
    "heating_ramp_rate": ("max", "°C/s"),
    "cooling_rate": ("max", "°C/s"),
    "release_dose": ("min", "mJ/cm²"),
    "support_release_dose": ("min", "mJ/cm²"),
    "heat_release_held": ("min", "s"),
    "lift_displacement": ("band", "µm"),
    "lift_speed": ("band", "µm/s"),
    "lift_force": ("max", "N"),
    "dispensed_volume": ("band", "µL"),
    "cure_conversion": ("min", ""),
}

_WINDOW = re.compile(r"^\[\s*(-?[\d.eE+-]+)\s*,\s*(-?[\d.eE+-]+)\s*\]$")


@dataclass(frozen=True)
class Bounds:
    lo: float | None
    hi: float | None
    unit: str

    @property
    def window(self) -> float | None:
        """The width a margin is a fraction of: the window between two limits, or for a
        one-sided limit its distance from zero (None at a limit of zero)."""
        if self.lo is not None and self.hi is not None:
            return self.hi - self.lo
        one = self.hi if self.hi is not None else self.lo
        return abs(one) if one else None

    def margin(self, value: float | None) -> float | None:
        """Distance to the nearest limit in the check's unit; negative = outside."""
        if value is None:
            return None
        sides = [value - self.lo] if self.lo is not None else []
        if self.hi is not None:
            sides.append(self.hi - value)
        return min(sides) if sides else None

    def fraction(self, margin: float | None) -> float | None:
        w = self.window
        return None if margin is None or not w else margin / w

    def cpk(self, values: Sequence[float]) -> float | None:
        """Process capability against the limits; None without spread or a limit."""
        if len(values) < 2:
            return None
        mu, sigma = statistics.fmean(values), statistics.stdev(values)
        if not sigma > 0:
            return None
        sides = [mu - self.lo] if self.lo is not None else []
        if self.hi is not None:
            sides.append(self.hi - mu)
        return min(sides) / (3.0 * sigma) if sides else None


def _tolerance(name: str, limit: float, recipe: AnyRecipe) -> float | None:
    if name == "lift_speed":
        return SPEED_TOLERANCE * limit
    if name == "dispensed_volume":
        return VOLUME_TOLERANCE * limit
    lift = next((s for s in recipe.steps if isinstance(s, LeadLiftStep)), None)
    return lift.tolerance_um if lift is not None else None


def bounds(check: Mapping[str, Any], recipe: AnyRecipe) -> Bounds | None:
    """The limits of one conformance entry of a result document; None if it has none."""
    name = str(check["check"]).split("@", 1)[0]
    known = CHECKS.get(name)
    if known is None:
        return None
    sense, unit = known
    limit = check.get("limit")
    if sense == "window" and isinstance(limit, str):
        m = _WINDOW.match(limit)
        return Bounds(float(m.group(1)), float(m.group(2)), unit) if m else None
    if not isinstance(limit, int | float) or isinstance(limit, bool) or not math.isfinite(limit):
        return None
    if sense == "max":
        return Bounds(None, float(limit), unit)
    if sense == "min":
        return Bounds(float(limit), None, unit)
    if sense == "band":
        tol = _tolerance(name, float(limit), recipe)
        return None if tol is None else Bounds(limit - tol, limit + tol, unit)
    return None
