"""What the machine cannot measure, estimated from what it does: UV dose, dispensed volume,
cure conversion.

- UV dose: the source's irradiance integrated over the time its shutter is open.
- Dispensed volume: a time-pressure dispenser meters nothing; volume = flow coefficient of
  the encapsulant (recipe, datasheet) × pressure × time while the valve is open.
- Cure conversion: the encapsulant's kinetics (recipe) integrated over the *measured*
  temperature of the part it sits on, from the moment any was dispensed.

Each is integrated per snapshot over the interval since the previous one, taking the lower
of the two readings bounding it: the dose and the conversion are then lower bounds, so a
check that they reached their targets cannot pass on an estimate that ran ahead.
``update`` may be called with the same snapshot by several consumers; it integrates once.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.machine.monitor import Snapshot
from daemon.recipe.kinetics import advance
from daemon.recipe.model import AnyRecipe, CureKinetics, LeadLiftRecipe

# The encapsulant sits around the leads on the component; the chuck is the fallback sensor.
CURE_CHANNELS = ("component", "chuck")


@dataclass
class ProcessEstimates:
    flow_ul_per_kpa_s: float | None = None
    kinetics: CureKinetics | None = None
    uv_dose_mj_cm2: float = 0.0  # cumulative over the run
    dispensed_ul: float = 0.0  # cumulative over the run
    cure_conversion: float = 0.0
    _last_t: float | None = None
    _last_uv: float = 0.0
    _last_kpa: float = 0.0
    _last_temp: float | None = None

    @classmethod
    def for_recipe(cls, recipe: AnyRecipe) -> ProcessEstimates:
        if isinstance(recipe, LeadLiftRecipe):
            enc = recipe.materials.encapsulant
            return cls(flow_ul_per_kpa_s=enc.flow_ul_per_kpa_s, kinetics=enc.cure)
        return cls()

    @staticmethod
    def irradiance(snap: Snapshot) -> float:
        """What reaches the part: the source's irradiance while its shutter is open, else 0."""
        uv = snap.uv
        if uv is None or uv.fault or not uv.shutter_open:
            return 0.0
        return max(0.0, uv.irradiance_mw_cm2)

    @staticmethod
    def dispense_kpa(snap: Snapshot) -> float:
        d = snap.dispenser
        if d is None or d.fault or not d.dispensing:
            return 0.0
        return max(0.0, d.pressure_kpa)

    @staticmethod
    def cure_temp(snap: Snapshot) -> float | None:
        for ch in CURE_CHANNELS:
            v = snap.temp(ch)
            if v is not None:
                return v
        return None

    def update(self, snap: Snapshot) -> None:
        if self._last_t is not None and snap.t <= self._last_t:
            return  # this snapshot was integrated already
        uv, kpa, temp = self.irradiance(snap), self.dispense_kpa(snap), self.cure_temp(snap)
        if self._last_t is not None:
            dt = snap.t - self._last_t
            self.uv_dose_mj_cm2 += min(uv, self._last_uv) * dt  # mW/cm² × s = mJ/cm²
            if self.flow_ul_per_kpa_s is not None:
                # A shot starts and ends between snapshots: half an interval at each edge.
                both = min(kpa, self._last_kpa)
                edge = max(kpa, self._last_kpa) - both
                self.dispensed_ul += self.flow_ul_per_kpa_s * (both + 0.5 * edge) * dt
            if self.kinetics is not None and self.dispensed_ul > 0.0:
                lows = [x for x in (temp, self._last_temp) if x is not None]
                if lows:
                    self.cure_conversion = advance(
                        self.kinetics, self.cure_conversion, min(lows), dt
                    )
        self._last_t, self._last_uv, self._last_kpa = snap.t, uv, kpa
        self._last_temp = temp
