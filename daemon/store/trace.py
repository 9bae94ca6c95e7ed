"""One row of a run's trace: every channel and the setpoint at one instant."""

from __future__ import annotations

from dataclasses import dataclass, field


# Not frozen: one is built every control cycle (a frozen dataclass's __init__ costs ~4x a
# plain one) and nothing mutates or hashes one; they are values, as ``Reading`` (docs/adr/0105).
@dataclass(slots=True)
class Sample:
    t_s: float  # seconds since the run started (simulated time under --sim)
    step: str  # name of the step running, "" between steps
    setpoint_c: float | None  # the temperature setpoint being followed, if any
    temps_c: dict[str, float | None]  # thermocouple channel -> °C (None = no valid reading)
    pressure_mbar: float | None
    o2_ppm: float | None  # None while the analyzer is not measuring
    lamp_pct: float  # mean commanded lamp power over the zones, %
    z_um: float | None = None
    lamp_zones_pct: tuple[float, ...] = field(default_factory=tuple)
    # Lead lift, release, encapsulation (None = not measured / not part of this run).
    z_force_n: float | None = None  # Z head load cell
    uv_mw_cm2: float | None = None  # irradiance while the shutter is open, else 0
    uv_dose_mj_cm2: float | None = None  # delivered so far (the daemon's integral)
    cure_conversion: float | None = None  # the daemon's estimate from the kinetics, 0..1
    dispensed_ul: float | None = None  # the daemon's estimate: pressure × time × flow coeff.

    def o2_partial_mbar(self) -> float | None:
        if self.o2_ppm is None or self.pressure_mbar is None:
            return None
        return self.o2_ppm * 1e-6 * self.pressure_mbar

    def component_avg_c(self) -> float | None:
        """Average of the ``component*`` channels that read valid."""
        vals = [v for k, v in self.temps_c.items() if k.startswith("component") and v is not None]
        return sum(vals) / len(vals) if vals else None
