"""Disturbances of one simulated machine within its specification, drawn from a seed.

A prediction over seeds (``bonderd predict --seeds N``) asks how a recipe fares on the same
machine on different days: the thermocouples a little noisier, the coolant not yet at its
setpoint, a film that leaks a little more, lamps that have aged or were just replaced, a
solder deposit at the edge of its tolerance. Each draw comes from its own generator seeded
with the seed alone, so seed N is the same machine on every host and in every process.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from typing import Final

from drivers.sim.plant.params import PlantParams

__all__ = ["LAMP_SPREAD", "SOLDER_MASS_SPREAD", "Disturbance", "disturbance", "disturbed"]

LAMP_SPREAD: Final = 0.05  # lamp radiant output, ± relative (ageing, a replaced lamp)
SOLDER_MASS_SPREAD: Final = 0.10  # solder deposit mass, ± relative (paste or bump tolerance)
TC_NOISE_RANGE_C: Final = (0.05, 0.2)  # thermocouple noise σ, °C (the nominal 0.1 inside)
CHILLER_START_RANGE_K: Final = (-3.0, 5.0)  # coolant at switch-on, relative to ambient
# Film leak, a factor on the nominal one, drawn log-uniform. At 5× the rise in the leak
# check is still ~0.3 mbar/min, far inside the shipped recipes' 5 mbar/min.
LEAK_FACTOR_RANGE: Final = (0.5, 5.0)


@dataclass(frozen=True)
class Disturbance:
    """One draw: what differs from the nominal machine. Units in the names."""

    seed: int
    tc_noise_c: float
    chiller_start_c: float
    leak_mbar_l_s: float
    lamp_output: float  # factor on the radiant power that reaches the parts
    solder_mass: float  # factor on the solder deposit (its latent heat)

    def as_dict(self) -> dict[str, float | int]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.fields()}

    def fields(self) -> list[tuple[str, float | int]]:
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)]


def disturbance(seed: int, params: PlantParams | None = None) -> Disturbance:
    """The disturbance of ``seed`` around ``params`` (default: the nominal plant)."""
    p = params if params is not None else PlantParams()
    rng = random.Random(f"bonderd-disturbance-{seed}")
    leak_lo, leak_hi = (math.log(f) for f in LEAK_FACTOR_RANGE)
    return Disturbance(
        seed=seed,
        tc_noise_c=rng.uniform(*TC_NOISE_RANGE_C),
        chiller_start_c=p.ambient_c + rng.uniform(*CHILLER_START_RANGE_K),
        leak_mbar_l_s=p.leak_mbar_l_s * math.exp(rng.uniform(leak_lo, leak_hi)),
        lamp_output=1.0 + rng.uniform(-LAMP_SPREAD, LAMP_SPREAD),
        solder_mass=1.0 + rng.uniform(-SOLDER_MASS_SPREAD, SOLDER_MASS_SPREAD),
    )


def disturbed(params: PlantParams | None, d: Disturbance) -> PlantParams:
    """``params`` with disturbance ``d`` applied.

    Lamp output scales the radiant shares that reach the chips and the component, not the
    electrical power: the lamp driver's reading stays what it was commanded, as on a machine
    whose lamps have aged. Solder mass scales the latent heat the deposit takes to melt.
    """
    p = params if params is not None else PlantParams()
    return dataclasses.replace(
        p,
        tc_noise_c=d.tc_noise_c,
        chiller_start_c=d.chiller_start_c,
        leak_mbar_l_s=d.leak_mbar_l_s,
        frac_to_chips=p.frac_to_chips * d.lamp_output,
        frac_to_component=p.frac_to_component * d.lamp_output,
        solder_latent_j=p.solder_latent_j * d.solder_mass,
    )
