"""How an O2 reading is shown to a person: the concentration only where it means something.

The analyzer reports a concentration. Under the film's vacuum the few mbar left in the
working space are mostly leaked-in air, so the figure climbs towards 209 000 ppm while the
oxygen that acts on the solder, the partial pressure, is tiny: below
``O2_PPM_MIN_PRESSURE_MBAR`` the ppm figure is shown as not meaningful and the partial
pressure carries the information, as in the conformance checks (ADR 0004).
"""

from __future__ import annotations

from daemon.recipe.model import O2_PPM_MIN_PRESSURE_MBAR

__all__ = ["O2_PPM_MIN_PRESSURE_MBAR", "o2_meaningful", "o2_partial_mbar", "o2_text"]


def o2_meaningful(pressure_mbar: float | None) -> bool:
    return pressure_mbar is not None and pressure_mbar >= O2_PPM_MIN_PRESSURE_MBAR


def o2_partial_mbar(ppm: float | None, pressure_mbar: float | None) -> float | None:
    return None if ppm is None or pressure_mbar is None else ppm * 1e-6 * pressure_mbar


def o2_text(ppm: float | None, pressure_mbar: float | None, *, partial: bool = True) -> str:
    """``O2 3.2 ppm (pO2 0.0032 mbar)``, or ``O2 — ppm (< 100 mbar) (pO2 4.1e-04 mbar)``."""
    if ppm is None:
        head = "O2 — ppm"
    elif not o2_meaningful(pressure_mbar):
        head = f"O2 — ppm (< {O2_PPM_MIN_PRESSURE_MBAR:g} mbar)"
    else:
        head = f"O2 {ppm:.3g} ppm"
    if not partial:
        return head
    pp = o2_partial_mbar(ppm, pressure_mbar)
    return head + (f" (pO2 {pp:.2g} mbar)" if pp is not None else "")
