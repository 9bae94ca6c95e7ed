"""Chip temperature control: the setpoint profile and the lamp-power loop.

The loop is feedforward from a lumped model of the chip (the power the setpoint's slope
and the losses to the component need) plus PI on the control thermocouple, with
anti-windup by conditional integration. Gains are for the bonder's identified model
(DESIGN.md numbers); a later issue pushes tracking to the plant's limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from daemon.recipe.model import Segment


@dataclass(frozen=True, slots=True)
class ThermalModel:
    chip_heat_capacity_j_k: float = 25.0
    lamp_max_w: float = 4000.0  # electrical, all zones
    fraction_to_chip: float = 0.35
    chip_loss_w_k: float = 4.0  # chip -> component under vacuum, typical
    # Filament (≈0.25 s) plus thermocouple (≈0.3 s) lag: what the loop sees of a ramp is
    # this late, so the error is taken against the setpoint this long ago.
    sensing_lag_s: float = 0.5


class Profile:
    """Setpoint versus time for ramp-then-hold segments, starting from ``start_c``."""

    def __init__(self, start_c: float, segments: Sequence[Segment]) -> None:
        self._pieces: list[tuple[float, float, float, float]] = []  # t0, t1, from, to
        t, temp = 0.0, start_c
        for seg in segments:
            ramp_s = abs(seg.to_c - temp) / seg.ramp_c_per_s
            self._pieces.append((t, t + ramp_s, temp, seg.to_c))
            t += ramp_s
            if seg.hold_s > 0:
                self._pieces.append((t, t + seg.hold_s, seg.to_c, seg.to_c))
                t += seg.hold_s
            temp = seg.to_c
        self.duration_s = t
        self.final_c = temp

    def at(self, t: float) -> tuple[float, float]:
        """(setpoint °C, setpoint slope °C/s) at ``t`` seconds into the profile."""
        for t0, t1, a, b in self._pieces:
            if t < t1:
                if t1 <= t0:
                    continue
                frac = max(0.0, (t - t0) / (t1 - t0))
                return a + (b - a) * frac, (b - a) / (t1 - t0)
        return self.final_c, 0.0


class LampController:
    def __init__(
        self,
        model: ThermalModel | None = None,
        kp_pct_per_k: float = 2.0,
        ti_s: float = 6.0,
        max_pct: float = 100.0,
        catch_up_c: float = 1.5,
    ) -> None:
        self.model = model or ThermalModel()
        self.kp = kp_pct_per_k
        self.ti = ti_s
        self.max_pct = max_pct
        self.catch_up_c = catch_up_c
        self._integral = 0.0  # % of output
        self._last_t: float | None = None

    def reset(self) -> None:
        self._integral = 0.0
        self._last_t = None

    def feedforward_pct(self, setpoint_c: float, slope_c_s: float, sink_c: float) -> float:
        m = self.model
        watts = m.chip_heat_capacity_j_k * slope_c_s + m.chip_loss_w_k * (setpoint_c - sink_c)
        return 100.0 * watts / (m.lamp_max_w * m.fraction_to_chip)

    def update(
        self,
        t: float,
        profile: Profile,
        t_profile: float,
        measured_c: float,
        sink_c: float,
    ) -> tuple[float, float]:
        """(lamp power %, setpoint °C) for this period; ``sink_c`` is where the chip's heat goes."""
        dt = 0.0 if self._last_t is None else max(0.0, t - self._last_t)
        self._last_t = t
        setpoint, slope = profile.at(t_profile)
        reference, _ = profile.at(max(0.0, t_profile - self.model.sensing_lag_s))
        error = reference - measured_c
        # On a ramp, a chip that trails (latent heat, a slow start) is not pushed to catch up
        # faster than the ramp: that would break the recipe's rate limits.
        if slope > 0:
            error = min(error, self.catch_up_c)
        elif slope < 0:
            error = max(error, -self.catch_up_c)
        ff = self.feedforward_pct(setpoint, slope, sink_c)
        unclamped = ff + self.kp * error + self._integral
        saturated_high = unclamped >= self.max_pct and error > 0
        saturated_low = unclamped <= 0.0 and error < 0
        if not (saturated_high or saturated_low):
            self._integral += self.kp * error * dt / self.ti
        out = ff + self.kp * error + self._integral
        return min(self.max_pct, max(0.0, out)), setpoint
