"""nth-order Arrhenius cure kinetics, as encapsulant datasheets (or a DSC fit) state them.

dα/dt = A · exp(−Ea / (R·T)) · (1 − α)^n

Used twice: by validation (can the programmed profile reach the target at all?) and by the
daemon's cure monitor, which estimates conversion from the *measured* temperature, as real
cure monitoring does when no dielectric sensor is fitted.
"""

from __future__ import annotations

import math

from daemon.recipe.model import CureKinetics

GAS_CONSTANT = 8.314462618  # J/(mol·K)
KELVIN = 273.15


def rate_constant(k: CureKinetics, temp_c: float) -> float:
    """k(T) in 1/s."""
    return k.a_per_s * math.exp(-k.ea_j_mol / (GAS_CONSTANT * (temp_c + KELVIN)))


def advance(k: CureKinetics, alpha: float, temp_c: float, dt_s: float) -> float:
    """Conversion after ``dt_s`` at constant ``temp_c``, exact for the nth-order law."""
    if dt_s <= 0.0 or alpha >= 1.0:
        return alpha
    kt = rate_constant(k, temp_c) * dt_s
    rest = 1.0 - alpha
    if abs(k.n - 1.0) < 1e-9:
        rest *= math.exp(-kt)
    else:
        base = rest ** (1.0 - k.n) + (k.n - 1.0) * kt
        rest = 0.0 if base <= 0.0 else base ** (1.0 / (1.0 - k.n))
    return min(1.0, max(alpha, 1.0 - rest))


def time_to(k: CureKinetics, alpha0: float, target: float, temp_c: float) -> float:
    """Seconds at constant ``temp_c`` to go from ``alpha0`` to ``target`` (inf if never)."""
    if target <= alpha0:
        return 0.0
    kk = rate_constant(k, temp_c)
    if kk <= 0.0:
        return math.inf
    if target >= 1.0:
        # n < 1 reaches full conversion in finite time; n ≥ 1 only asymptotically.
        if k.n >= 1.0:
            return math.inf
        return float((1.0 - alpha0) ** (1.0 - k.n) / ((1.0 - k.n) * kk))
    if abs(k.n - 1.0) < 1e-9:
        return math.log((1.0 - alpha0) / (1.0 - target)) / kk
    return float(
        ((1.0 - target) ** (1.0 - k.n) - (1.0 - alpha0) ** (1.0 - k.n)) / ((k.n - 1.0) * kk)
    )
