"""The component's coupling to the chip and to the chuck, from the tune run's phase A (ADR 0176).

Phase A of the chip's experiment (daemon/thermal/tune.py) is a lamp staircase well below the
solidus, film pressed, chuck held at the experiment's setpoint; the chip loop records the
component thermocouple (the chip's sink) beside the chip's. Per component heat capacity the
component node is

    d(component)/dt = a·lamp % + from_chip·(chip − component) − to_chuck·(component − chuck)

and the three terms are fitted by equation error on one-second integrals (the thermocouple
noise integrates out). ``from_chip`` and ``to_chuck`` are well determined (the staircase
swings the chip–component difference by tens of kelvin); the direct lamp share ``a`` is a
few per cent of the heat and nearly collinear with the chip's drive, so it is fitted but not
used: the twin keeps the nominal share. Like every identified term, the twin uses these as
ratios to the same fit on the nominal plant (drivers/sim/plant/calibrate.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from daemon.thermal.fit import Record, TuneError, solve, trapezoid, windows

__all__ = ["ComponentModel", "identify_component"]

_WINDOW_S: Final = 1.0
_MIN_WINDOWS: Final = 20


@dataclass(frozen=True, slots=True)
class ComponentModel:
    from_chip_per_s: float  # chip–component conductance, film pressed, per component capacity
    to_chuck_per_s: float  # component–chuck conductance, clamped, per component capacity


def identify_component(rec: Record, chuck_c: float) -> ComponentModel:
    """The component's two couplings from phase A of ``rec``, the chuck held at ``chuck_c``."""
    a = [i for i, p in enumerate(rec.phase) if p == "A"]
    t = [rec.t[i] for i in a]
    u = [rec.u[i] for i in a]
    comp = [rec.sink[i] for i in a]
    chip_minus = [rec.y[i] - c for i, c in zip(a, comp, strict=True)]
    minus_chuck = [c - chuck_c for c in comp]
    spans = windows(t, _WINDOW_S)
    if len(spans) < _MIN_WINDOWS:
        raise TuneError(f"component: {len(spans)} s of phase A recorded, need {_MIN_WINDOWS}")
    rows = [
        [trapezoid(t, u, s, e), trapezoid(t, chip_minus, s, e), -trapezoid(t, minus_chuck, s, e)]
        for s, e in spans
    ]
    rhs = [comp[e] - comp[s] for s, e in spans]
    try:
        (_lamp, from_chip, to_chuck), _ = solve(rows, rhs)
    except TuneError as exc:
        raise TuneError(f"component: {exc}: does its thermocouple read the component?") from exc
    if not (from_chip > 0 and to_chuck > 0):
        raise TuneError(
            f"component: couplings not physical (from chip {from_chip:.4g}/s, "
            f"to chuck {to_chuck:.4g}/s): is the component thermocouple on the component?"
        )
    return ComponentModel(from_chip_per_s=from_chip, to_chuck_per_s=to_chuck)
