"""The shortest cycle the simulated machine's physics allows for a vacuum-film bond recipe.

A documented lower bound, step by step, from the plant's limits (``PlantParams``) and the
recipe's own requirements. Every simplification below makes the bound *smaller* (never
larger), so ``cycle_time_s / cycle_time_lower_bound_s`` ≥ 1 measures how much time the
executor's sequencing and control leave on the table, and the per-step table shows where.

Model (the run starts with everything at ambient and the working space at atmosphere):

- chuck_stabilize: the chuck must move from ambient to within ``tolerance_c`` of the
  setpoint, and its heat goes only through the fluid: the chiller works on the fluid
  (capacity Q_max, cooling or heating), the fluid on the chuck through the chuck–fluid
  conductance G (chiller running). With the chiller at full capacity from t = 0 (no lag of
  its own), ambient gains, the component and the chip ignored (each only holds the chuck
  back), the two nodes from equal temperatures give, with λ = G·(1/C_chuck + 1/C_fluid):
      fluid − chuck:  u(t) = Q/(C_fluid·λ)·(1 − e^(−λt))
      chuck:          ΔT(t) = Q/(C_chuck + C_fluid)·(t − (1 − e^(−λt))/λ)
  (the sum C_chuck·ΔT_chuck + C_fluid·ΔT_fluid = Q·t, and C_chuck·dT_chuck/dt = G·u). The
  system is cooperative (every coupling pulls nodes together), so no controller, whatever it
  does with the setpoint, moves the chuck faster than this full-capacity trajectory. The
  bound is the first t with ΔT(t) = the distance to the band's edge (≥ the capacity-only
  (C_chuck + C_fluid)·ΔT / Q, by ≈ 1/λ once t ≫ 1/λ), then ``settle_s``.
- purge, per cycle: pump-down at the pump's effective speed, dp/dt = −S/V·(p − p_ult)
  (leak ignored): t = V/S·ln((p0 − p_ult)/(p1 − p_ult)); then N2 backfill with the valve's
  flow (choked up to the critical pressure ratio, then the ISO 6358 elliptic fall),
  t = ∫ V/q(p) dp. The O2 analyzer's next sample (up to one stream period) is not counted.
- pump_down: pump-down from the last backfill pressure to ``target_mbar``; the leak check's
  ``hold_s``; the pump-down of the rise the baseline leak makes during the hold.
- reflow: each segment ramps at the slowest of the segment's rate, the recipe's
  ``max_ramp_c_per_s`` and the lamps' ceiling (all the chips' share of the full lamp power
  into the chip's heat capacity, losses ignored; in the melt band the latent heat too),
  then holds ``hold_s``. Starts at the chuck setpoint.
- cool: from the last segment's temperature to ``to_c`` at the slowest of the recipe's
  ``max_rate_c_per_s`` and the fastest cooling the chip can have (pressed film and molten
  joint conductance to a component at the chuck setpoint, plus radiation; latent heat in
  the melt band).
- securement_release: reach ``temperature_c`` within ``tolerance_c`` at the physics' rate
  (cooling as above, or heating at the lamps' ceiling), then ``time_s``.
- vent: the vent valve's conductance to atmosphere, dp/dt = C/V·(p_atm − p).

The time the executor spends between steps (device identification, records) is part of the
measured cycle but has no physical floor: the bound counts zero for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from daemon.recipe.model import (
    ChuckStabilize,
    Cool,
    PumpDown,
    Purge,
    Reflow,
    SecurementRelease,
    VacuumFilmBondRecipe,
    Vent,
)
from drivers.sim.plant import PlantParams

STEFAN_BOLTZMANN = 5.670374419e-8
KELVIN = 273.15
_INTEGRATION_STEPS = 2000


@dataclass(frozen=True)
class StepBound:
    name: str
    type: str
    bound_s: float
    model: str  # what limits this step, for the table


@dataclass(frozen=True)
class CycleBound:
    steps: list[StepBound]

    @property
    def total_s(self) -> float:
        return sum(s.bound_s for s in self.steps)


def pump_time_s(p: PlantParams, p0: float, p1: float) -> float:
    """Pumping the working space from ``p0`` down to ``p1`` mbar at the effective speed."""
    if p1 >= p0:
        return 0.0
    if p1 <= p.pump_ultimate_mbar:
        return math.inf
    return (
        p.volume_l
        / p.pump_speed_l_s
        * math.log((p0 - p.pump_ultimate_mbar) / (p1 - p.pump_ultimate_mbar))
    )


def chuck_reach_time_s(p: PlantParams, q_w: float, delta_k: float) -> float:
    """The first time the chuck has moved ``delta_k`` with the chiller at ``q_w`` on the
    fluid from t = 0 (module docstring): ΔT(t) = Q/(C_k + C_f)·(t − (1 − e^(−λt))/λ)."""
    if delta_k <= 0.0:
        return 0.0
    c_sum = p.c_chuck_j_k + p.c_fluid_j_k
    lam = p.g_chuck_fluid_flow_w_k * (1.0 / p.c_chuck_j_k + 1.0 / p.c_fluid_j_k)

    def moved(t: float) -> float:
        return q_w / c_sum * (t + math.expm1(-lam * t) / lam)

    # ΔT is increasing in t; it reaches delta_k between the capacity-only time and that
    # plus 1/λ (t − (1 − e^(−λt))/λ > t − 1/λ).
    lo = c_sum * delta_k / q_w
    hi = lo + 1.0 / lam
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if moved(mid) < delta_k:
            lo = mid
        else:
            hi = mid
    return lo


def n2_flow_mbar_l_s(p: PlantParams, pressure: float) -> float:
    """The N2 purge valve's flow into the working space at ``pressure`` (as the plant)."""
    ratio = pressure / p.n2_supply_mbar
    if ratio <= p.n2_critical_ratio:
        return p.n2_flow_max_mbar_l_s
    if ratio >= 1.0:
        return 0.0
    r = (ratio - p.n2_critical_ratio) / (1.0 - p.n2_critical_ratio)
    return p.n2_flow_max_mbar_l_s * math.sqrt(1.0 - r * r)


def backfill_time_s(p: PlantParams, p0: float, p1: float) -> float:
    """N2 backfill from ``p0`` up to ``p1`` mbar: t = ∫ V / q(p) dp (midpoint rule)."""
    if p1 <= p0:
        return 0.0
    if p1 >= p.n2_supply_mbar:
        return math.inf
    dp = (p1 - p0) / _INTEGRATION_STEPS
    return sum(
        p.volume_l * dp / n2_flow_mbar_l_s(p, p0 + (i + 0.5) * dp)
        for i in range(_INTEGRATION_STEPS)
    )


def vent_time_s(p: PlantParams, p0: float, p1: float) -> float:
    if p1 <= p0:
        return 0.0
    if p1 >= p.p_atm_mbar:
        return math.inf
    return p.volume_l / p.vent_conductance_l_s * math.log((p.p_atm_mbar - p0) / (p.p_atm_mbar - p1))


def _melt_band(p: PlantParams, solidus: float, liquidus: float) -> tuple[float, float]:
    width = liquidus - solidus
    if width < p.melt_band_min_k:
        return liquidus - p.melt_band_min_k, liquidus
    return solidus, liquidus


def _lamp_ceiling_w(p: PlantParams) -> float:
    return p.zones * p.zone_max_w * p.frac_to_chips


def _ramp_time_s(  # noqa: PLR0917 - a formula's inputs, named at every call
    t0: float,
    t1: float,
    rate_limit: float,
    phys_rate: Callable[[float], float],
    band: tuple[float, float],
    c_chip: float,
    latent_j: float,
) -> float:
    """Time from ``t0`` to ``t1`` at min(rate_limit, physics), the melt band's latent heat
    slowing the physics there. ``phys_rate(T)`` is the fastest rate with no latent heat."""
    if t0 == t1:
        return 0.0
    lo, hi = band
    width = max(hi - lo, 1e-9)
    dt = (t1 - t0) / _INTEGRATION_STEPS
    total = 0.0
    for i in range(_INTEGRATION_STEPS):
        temp = t0 + (i + 0.5) * dt
        rate = phys_rate(temp)
        if lo <= temp <= hi:
            rate *= c_chip / (c_chip + latent_j / width)
        rate = min(rate, rate_limit)
        total += abs(dt) / rate if rate > 0 else math.inf
    return total


def cycle_bound(recipe: VacuumFilmBondRecipe, params: PlantParams | None = None) -> CycleBound:
    p = params or PlantParams()
    solder = recipe.materials.solder
    band = _melt_band(p, solder.solidus_c, solder.liquidus_c)
    ceiling_w = _lamp_ceiling_w(p)
    c_chip, latent = p.c_chip_j_k, p.solder_latent_j
    chuck_c = p.ambient_c
    chip_c = p.ambient_c
    pressure = p.p_atm_mbar
    out: list[StepBound] = []

    def heat_rate(_t: float) -> float:
        return ceiling_w / c_chip

    def cool_rate(t: float) -> float:
        # Upper bound on how fast the chip can shed heat: pressed film and molten-joint
        # conductance to a component held at the chuck, and radiation to ambient.
        g = p.g_chip_comp_vac_w_k + p.g_chip_comp_melt_w_k
        rad = (
            p.chip_emissivity
            * STEFAN_BOLTZMANN
            * p.chip_area_m2
            * ((t + KELVIN) ** 4 - (p.ambient_c + KELVIN) ** 4)
        )
        return max(0.0, g * (t - chuck_c) + rad) / c_chip

    for step in recipe.steps:
        name = step.name or step.type
        if isinstance(step, ChuckStabilize):
            delta = max(0.0, abs(chuck_c - step.setpoint_c) - step.tolerance_c)
            q = p.chiller_cool_max_w if step.setpoint_c < chuck_c else p.chiller_heat_max_w
            t = chuck_reach_time_s(p, q, delta) + step.settle_s
            out.append(
                StepBound(
                    name,
                    step.type,
                    t,
                    f"chiller {q:g} W through fluid→chuck {p.g_chuck_fluid_flow_w_k:g} W/K "
                    f"moves the chuck {delta:.1f} K, settle {step.settle_s:g} s",
                )
            )
            chuck_c = chip_c = step.setpoint_c
        elif isinstance(step, Purge):
            t = 0.0
            for _ in range(step.cycles):
                t += pump_time_s(p, pressure, step.pump_to_mbar)
                t += backfill_time_s(p, step.pump_to_mbar, step.backfill_to_mbar)
                pressure = step.backfill_to_mbar
            out.append(
                StepBound(
                    name,
                    step.type,
                    t,
                    f"{step.cycles}× pump {p.pump_speed_l_s:g} L/s + N2 ≤ "
                    f"{p.n2_flow_max_mbar_l_s:g} mbar·L/s",
                )
            )
        elif isinstance(step, PumpDown):
            t = pump_time_s(p, pressure, step.target_mbar)
            model = f"pump {p.pump_speed_l_s:g} L/s into {p.volume_l:g} L"
            pressure = step.target_mbar
            if step.leak_check is not None:
                hold = step.leak_check.hold_s
                inflow = p.leak_mbar_l_s * (p.p_atm_mbar - pressure) / p.p_atm_mbar
                risen = pressure + inflow * hold / p.volume_l
                t += hold + pump_time_s(p, risen, step.target_mbar)
                model += f", leak check {hold:g} s"
            out.append(StepBound(name, step.type, t, model))
        elif isinstance(step, Reflow):
            t = 0.0
            for seg in step.segments:
                limit = min(seg.ramp_c_per_s, step.max_ramp_c_per_s)
                rate = heat_rate if seg.to_c >= chip_c else cool_rate
                t += _ramp_time_s(chip_c, seg.to_c, limit, rate, band, c_chip, latent)
                t += seg.hold_s
                chip_c = seg.to_c
            out.append(
                StepBound(
                    name,
                    step.type,
                    t,
                    "segment ramps and holds (lamp ceiling "
                    f"{ceiling_w / c_chip:.0f} K/s never binds)",
                )
            )
        elif isinstance(step, Cool):
            t = _ramp_time_s(
                chip_c, step.to_c, step.max_rate_c_per_s, cool_rate, band, c_chip, latent
            )
            out.append(
                StepBound(
                    name,
                    step.type,
                    t,
                    f"{chip_c:g}→{step.to_c:g} °C at ≤ {step.max_rate_c_per_s:g} K/s "
                    "or the chip's fastest heat loss",
                )
            )
            chip_c = step.to_c
        elif isinstance(step, SecurementRelease):
            goal = step.temperature_c
            edge = goal + step.tolerance_c if goal < chip_c else goal - step.tolerance_c
            if abs(chip_c - goal) <= step.tolerance_c:
                edge = chip_c
            rate = cool_rate if edge < chip_c else heat_rate
            t = _ramp_time_s(chip_c, edge, math.inf, rate, band, c_chip, latent) + step.time_s
            out.append(
                StepBound(
                    name,
                    step.type,
                    t,
                    f"reach {goal:g}±{step.tolerance_c:g} °C at the physics' rate, "
                    f"hold {step.time_s:g} s",
                )
            )
            chip_c = edge
        elif isinstance(step, Vent):
            t = vent_time_s(p, pressure, step.to_mbar)
            out.append(
                StepBound(
                    name,
                    step.type,
                    t,
                    f"vent {p.vent_conductance_l_s:g} L/s to {step.to_mbar:g} mbar",
                )
            )
            pressure = step.to_mbar
        else:  # pragma: no cover - the recipe model has no other step
            raise TypeError(f"no bound model for step type {type(step).__name__}")
    return CycleBound(out)
