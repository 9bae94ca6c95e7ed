"""Conformance of a lead lift, judged on the recorded trace like every other kind.

The dose, volume and conversion in the trace are the daemon's estimates (lower bounds for
dose and conversion, daemon/steps/estimates.py); position and force are the stage's
measurements. A check whose step never ran fails with "not reached".
"""

from __future__ import annotations

from collections.abc import Sequence

from daemon.judge.types import Check, Metrics, StepOutcome
from daemon.recipe.model import (
    Cure,
    Encapsulate,
    HeatRelease,
    LeadLiftRecipe,
    LeadLiftStep,
    SupportRelease,
    UvRelease,
)
from daemon.store.trace import Sample

# The commanded speed is proven over the middle of the travel (acceleration at either end).
SPEED_SPAN = (0.1, 0.9)
SPEED_TOLERANCE = 0.10  # relative
VOLUME_TOLERANCE = 0.10  # relative, estimated volume against the programmed one
PART_CHANNELS = ("component", "chuck")


def _in(samples: Sequence[Sample], name: str) -> list[Sample]:
    return [s for s in samples if s.step == name]


def _before(samples: Sequence[Sample], t: float) -> list[Sample]:
    return [s for s in samples if s.t_s < t]


def _last(values: Sequence[float | None]) -> float | None:
    for v in reversed(values):
        if v is not None:
            return v
    return None


def _part(s: Sample) -> float | None:
    for ch in PART_CHANNELS:
        v = s.temps_c.get(ch)
        if v is not None:
            return v
    return None


def _dose_checks(
    recipe: LeadLiftRecipe, samples: Sequence[Sample], steps: Sequence[StepOutcome]
) -> list[Check]:
    checks: list[Check] = []
    lift = next((o for o in steps if o.type == "lead_lift"), None)
    for step in recipe.steps:
        if not isinstance(step, UvRelease | SupportRelease) or step.dose_mj_cm2 is None:
            continue
        name = "release_dose" if isinstance(step, UvRelease) else "support_release_dose"
        name += f"@{step.name}"
        cond = (
            f"the UV dose delivered in {step.type} {step.name!r} was ≥ {step.dose_mj_cm2:g} "
            "mJ/cm²" + (" before the lift started" if isinstance(step, UvRelease) else "")
        )
        inside = _in(samples, step.name)
        if not inside:
            checks.append(Check(name, False, None, step.dose_mj_cm2, "not reached", cond))
            continue
        before = [s for s in samples if s.t_s < inside[0].t_s]
        d0 = _last([s.uv_dose_mj_cm2 for s in before]) or 0.0
        window = inside
        if isinstance(step, UvRelease):
            if lift is None:
                detail = "not reached: the lift never started"
                checks.append(Check(name, False, None, step.dose_mj_cm2, detail, cond))
                continue
            window = _before(samples, lift.started_t_s)
        d1 = _last([s.uv_dose_mj_cm2 for s in window])
        if d1 is None:
            checks.append(Check(name, False, None, step.dose_mj_cm2, "dose not recorded", cond))
            continue
        dose = d1 - d0
        ok = dose >= step.dose_mj_cm2
        detail = f"{dose:.0f} mJ/cm² delivered (required {step.dose_mj_cm2:g} mJ/cm²)" + (
            "" if ok else ": too little, the layer may not have released"
        )
        checks.append(Check(name, ok, round(dose, 1), step.dose_mj_cm2, detail, cond))
    return checks


def _longest_in_band(samples: Sequence[Sample], target: float, tol: float) -> float:
    best = 0.0
    since: float | None = None
    for s in samples:
        v = _part(s)
        if v is not None and abs(v - target) <= tol:
            since = s.t_s if since is None else since
            best = max(best, s.t_s - since)
        else:
            since = None
    return best


def _heat_checks(recipe: LeadLiftRecipe, samples: Sequence[Sample]) -> list[Check]:
    checks: list[Check] = []
    for step in recipe.steps:
        if isinstance(step, HeatRelease) or (
            isinstance(step, SupportRelease) and step.method == "heat"
        ):
            assert step.temperature_c is not None and step.time_s is not None
            name = f"heat_release_held@{step.name}"
            cond = (
                f"the part was held at {step.temperature_c:g} ± {step.tolerance_c:g} °C for "
                f"≥ {step.time_s:g} s in {step.name!r}"
            )
            inside = _in(samples, step.name)
            if not inside:
                checks.append(Check(name, False, None, step.time_s, "not reached", cond))
                continue
            held = _longest_in_band(inside, step.temperature_c, step.tolerance_c)
            ok = held >= step.time_s - 0.1  # one sample interval of rounding
            detail = f"held {held:.1f} s continuously in the band (required {step.time_s:g} s)"
            checks.append(Check(name, ok, round(held, 2), step.time_s, detail, cond))
    return checks


def _lift_checks(recipe: LeadLiftRecipe, samples: Sequence[Sample]) -> list[Check]:
    checks: list[Check] = []
    for step in recipe.steps:
        if not isinstance(step, LeadLiftStep):
            continue
        inside = _in(samples, step.name)
        cond_d = (
            f"the support moved {step.displacement_um:g} ± {step.tolerance_um:g} µm in "
            f"{step.name!r}"
        )
        cond_v = (
            f"the lift ran at the commanded {step.speed_um_s:g} µm/s "
            f"(± {SPEED_TOLERANCE * 100:g} %)"
        )
        cond_f = (
            f"the lift force stayed ≤ {step.force_limit_n:g} N from the lift to the end of the run"
        )
        zs = [(s.t_s, s.z_um) for s in inside if s.z_um is not None]
        if not zs:
            for name, cond, lim in (
                ("lift_displacement", cond_d, step.displacement_um),
                ("lift_speed", cond_v, step.speed_um_s),
                ("lift_force", cond_f, step.force_limit_n),
            ):
                checks.append(Check(name, False, None, lim, "not reached", cond))
            continue
        z0 = zs[0][1]
        moved = zs[-1][1] - z0
        ok = abs(moved - step.displacement_um) <= step.tolerance_um
        detail = (
            f"moved {moved:.1f} µm (commanded {step.displacement_um:g} ± {step.tolerance_um:g})"
        )
        checks.append(
            Check("lift_displacement", ok, round(moved, 2), step.displacement_um, detail, cond_d)
        )
        lo, hi = (z0 + f * step.displacement_um for f in SPEED_SPAN)
        t_lo = next((t for t, z in zs if z >= lo), None)
        t_hi = next((t for t, z in zs if z >= hi), None)
        if t_lo is None or t_hi is None or t_hi <= t_lo:
            checks.append(
                Check(
                    "lift_speed",
                    False,
                    None,
                    step.speed_um_s,
                    "the lift did not cover the span the speed is measured over",
                    cond_v,
                )
            )
        else:
            speed = (hi - lo) / (t_hi - t_lo)
            ok = abs(speed - step.speed_um_s) <= SPEED_TOLERANCE * step.speed_um_s
            detail = (
                f"{speed:.1f} µm/s between {SPEED_SPAN[0]:.0%} and {SPEED_SPAN[1]:.0%} of the "
                f"travel (commanded {step.speed_um_s:g} µm/s)"
            )
            checks.append(Check("lift_speed", ok, round(speed, 2), step.speed_um_s, detail, cond_v))
        after = [s for s in samples if s.t_s >= inside[0].t_s and s.z_force_n is not None]
        if not after:
            checks.append(
                Check("lift_force", False, None, step.force_limit_n, "force not recorded", cond_f)
            )
        else:
            worst = max(after, key=lambda s: s.z_force_n or 0.0)
            f = worst.z_force_n or 0.0
            ok = f <= step.force_limit_n
            detail = f"max {f:.3f} N at t={worst.t_s:.1f} s in step {worst.step} (limit {step.force_limit_n:g} N)"
            checks.append(Check("lift_force", ok, round(f, 4), step.force_limit_n, detail, cond_f))
    return checks


def _encapsulate_checks(recipe: LeadLiftRecipe, samples: Sequence[Sample]) -> list[Check]:
    checks: list[Check] = []
    flow = recipe.materials.encapsulant.flow_ul_per_kpa_s
    for step in recipe.steps:
        if not isinstance(step, Encapsulate):
            continue
        want = (
            step.volume_ul
            if step.volume_ul is not None
            else flow * step.pressure_kpa * (step.time_s or 0.0)
        )
        name = f"dispensed_volume@{step.name}"
        cond = (
            f"the encapsulant dispensed in {step.name!r} (pressure × time × flow coefficient) "
            f"was {want:.3g} µL ± {VOLUME_TOLERANCE:.0%}"
        )
        inside = _in(samples, step.name)
        if not inside:
            checks.append(Check(name, False, None, round(want, 4), "not reached", cond))
            continue
        v0 = _last([s.dispensed_ul for s in samples if s.t_s < inside[0].t_s]) or 0.0
        v1 = _last([s.dispensed_ul for s in inside])
        if v1 is None:
            checks.append(Check(name, False, None, round(want, 4), "volume not recorded", cond))
            continue
        vol = v1 - v0
        ok = abs(vol - want) <= VOLUME_TOLERANCE * want
        detail = f"about {vol:.3g} µL dispensed (programmed {want:.3g} µL)"
        checks.append(Check(name, ok, round(vol, 4), round(want, 4), detail, cond))
    return checks


def _cure_checks(recipe: LeadLiftRecipe, samples: Sequence[Sample]) -> list[Check]:
    checks: list[Check] = []
    for step in recipe.steps:
        if not isinstance(step, Cure):
            continue
        name = f"cure_conversion@{step.name}"
        cond = (
            f"the encapsulant's estimated conversion reached ≥ {step.conversion_target:g} in "
            f"{step.name!r} (kinetics of {recipe.materials.encapsulant.name} on the measured "
            "temperature)"
        )
        inside = _in(samples, step.name)
        alpha = _last([s.cure_conversion for s in inside])
        if alpha is None:
            checks.append(Check(name, False, None, step.conversion_target, "not reached", cond))
            continue
        ok = alpha >= step.conversion_target
        detail = (
            f"conversion {alpha:.3f} at the end of the cure (target {step.conversion_target:g})"
        )
        checks.append(Check(name, ok, round(alpha, 4), step.conversion_target, detail, cond))
    return checks


def _part_checks(recipe: LeadLiftRecipe, samples: Sequence[Sample]) -> list[Check]:
    mats = recipe.materials
    limit = mats.component.tg_c - mats.component.tg_margin_c
    solidus = mats.solder.solidus_c
    out: list[Check] = []
    for name, channel, lim, cond in (
        (
            "component_below_tg",
            "component",
            limit,
            f"the component stayed ≤ Tg − margin ({limit:g} °C) all run",
        ),
        (
            "joints_below_solidus",
            "chip",
            solidus,
            f"the chip (and its joints) stayed below the {mats.solder.name} solidus "
            f"({solidus:g} °C) all run",
        ),
    ):
        vals = [s.temps_c.get(channel) for s in samples]
        missing = sum(1 for v in vals if v is None)
        seen = [v for v in vals if v is not None]
        if not seen:
            out.append(Check(name, False, None, lim, f"{channel} not recorded", cond))
            continue
        worst = max(seen)
        ok = worst < lim and missing == 0
        detail = f"max {channel} {worst:.1f} °C (limit {lim:g} °C)"
        if missing:
            detail += f"; {channel} not measured in {missing} sample(s): not measured is not proof"
        out.append(Check(name, ok, worst, lim, detail, cond))
    return out


def _metrics(
    recipe: LeadLiftRecipe, samples: Sequence[Sample], steps: Sequence[StepOutcome]
) -> Metrics:
    def mx(vals: Sequence[float | None]) -> float | None:
        seen = [v for v in vals if v is not None]
        return max(seen) if seen else None

    lift = next((o for o in steps if o.type == "lead_lift"), None)
    lift_samples = [s for s in samples if lift is not None and s.step == lift.name]
    zs = [s.z_um for s in lift_samples if s.z_um is not None]
    dose_at_lift = (
        _last([s.uv_dose_mj_cm2 for s in _before(samples, lift.started_t_s)])
        if lift is not None
        else None
    )
    starts = samples[:1]
    return {
        "max_force_n": mx([s.z_force_n for s in samples]),
        "uv_dose_at_lift_mj_cm2": dose_at_lift,
        "uv_dose_total_mj_cm2": _last([s.uv_dose_mj_cm2 for s in samples]),
        "lift_displacement_um": (zs[-1] - zs[0]) if zs else None,
        "dispensed_ul": _last([s.dispensed_ul for s in samples]),
        "cure_conversion": _last([s.cure_conversion for s in samples]),
        "max_component_c": mx([s.temps_c.get("component") for s in samples]),
        "max_chuck_c": mx([s.temps_c.get("chuck") for s in samples]),
        "max_chip_c": mx([s.temps_c.get("chip") for s in samples]),
        "cycle_time_s": (samples[-1].t_s - starts[0].t_s) if samples else None,
    }


def evaluate_lead_lift(
    recipe: LeadLiftRecipe, samples: Sequence[Sample], steps: Sequence[StepOutcome]
) -> tuple[list[Check], Metrics]:
    checks = [
        *_part_checks(recipe, samples),
        *_dose_checks(recipe, samples, steps),
        *_heat_checks(recipe, samples),
        *_lift_checks(recipe, samples),
        *_encapsulate_checks(recipe, samples),
        *_cure_checks(recipe, samples),
    ]
    return checks, _metrics(recipe, samples, steps)
