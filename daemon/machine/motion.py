"""Z stage motion as the daemon commands and watches it: shared by the steps and the interlocks."""

from __future__ import annotations

import math
from dataclasses import dataclass

# The position must change by more than this to count as moving (encoder noise).
Z_MOVING_UM = 1.0


@dataclass(frozen=True, slots=True)
class ZCommand:
    """A commanded Z move: trapezoidal from ``start_um`` at ``t0`` to ``target_um``."""

    t0: float
    start_um: float
    target_um: float
    speed_um_s: float
    accel_um_s2: float

    def position_at(self, t: float) -> float:
        """Where an ideal stage following the command is at clock time ``t``."""
        dist = abs(self.target_um - self.start_um)
        sign = 1.0 if self.target_um >= self.start_um else -1.0
        v, a = self.speed_um_s, self.accel_um_s2
        tt = max(0.0, t - self.t0)
        t_acc = v / a
        d_acc = 0.5 * a * t_acc * t_acc
        if 2.0 * d_acc >= dist:  # triangular: never reaches full speed
            t_half = math.sqrt(dist / a)
            if tt <= t_half:
                s = 0.5 * a * tt * tt
            else:
                td = min(tt, 2.0 * t_half) - t_half
                s = dist / 2.0 + a * t_half * td - 0.5 * a * td * td
        else:
            t_cruise = (dist - 2.0 * d_acc) / v
            if tt <= t_acc:
                s = 0.5 * a * tt * tt
            elif tt <= t_acc + t_cruise:
                s = d_acc + v * (tt - t_acc)
            else:
                td = min(tt - t_acc - t_cruise, t_acc)
                s = dist - d_acc + v * td - 0.5 * a * td * td
        return self.start_um + sign * min(s, dist)

    def duration_s(self) -> float:
        dist = abs(self.target_um - self.start_um)
        v, a = self.speed_um_s, self.accel_um_s2
        if v * v / a >= dist:
            return 2.0 * math.sqrt(dist / a)
        return dist / v + v / a
