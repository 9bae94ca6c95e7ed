"""Rules of a lead-lift recipe: release before lift, a release the adhesive answers to, a lift
the stage and the leads allow, heat that leaves the joints and the component intact.

Same conventions as daemon/recipe/rules.py: (TOML field path, reason) per problem, every
rule runs, and only what is certain to fail or to exceed the equipment is refused.
"""

from __future__ import annotations

from daemon.config import Limits
from daemon.recipe.catalogue import step_types
from daemon.recipe.kinetics import advance, time_to
from daemon.recipe.model import (
    Cure,
    Encapsulate,
    HeatRelease,
    LeadLiftRecipe,
    LeadLiftStep,
    SupportRelease,
    UvRelease,
)
from daemon.recipe.rules_common import Problem, at_step, num

RELEASE_TYPES = step_types(lambda s: s.releases_tips)
ORDER_TEXT = (
    "uv_release or heat_release → lead_lift → encapsulate → cure → support_release "
    "(encapsulate, cure and support_release optional; cure needs encapsulate before it)"
)
# Where the chuck starts a heated step when nothing earlier says: the circulator's idle.
AMBIENT_C = 25.0
# Conversion is integrated over the programmed profile in steps of this length.
_PROFILE_DT_S = 1.0


def check_lead_lift(recipe: LeadLiftRecipe, limits: Limits) -> list[Problem]:
    problems = [*_order(recipe), *_names(recipe)]
    for i, step in enumerate(recipe.steps):
        if step.timeout_s > limits.step_timeout_max_s:
            problems.append(
                (
                    at_step(i, "timeout_s"),
                    f"{num(step.timeout_s)} s is above the equipment's longest step timeout "
                    f"{num(limits.step_timeout_max_s)} s (limits.step_timeout_max_s)",
                )
            )
        if isinstance(step, UvRelease):
            problems += _uv(
                i,
                recipe,
                limits,
                irradiance=step.irradiance_mw_cm2,
                dose=step.dose_mj_cm2,
                timeout_s=step.timeout_s,
            )
        elif isinstance(step, HeatRelease):
            problems += _heat(
                i,
                recipe,
                limits,
                temperature_c=step.temperature_c,
                tolerance_c=step.tolerance_c,
                time_s=step.time_s,
                timeout_s=step.timeout_s,
            )
        elif isinstance(step, LeadLiftStep):
            problems += _lift(i, step, recipe, limits)
        elif isinstance(step, Encapsulate):
            problems += _encapsulate(i, step, recipe, limits)
        elif isinstance(step, Cure):
            problems += _cure(i, step, recipe, limits)
        elif isinstance(step, SupportRelease):
            problems += _support_release(i, step, recipe, limits)
    return problems


def _order(recipe: LeadLiftRecipe) -> list[Problem]:
    problems: list[Problem] = []
    types = [s.type for s in recipe.steps]
    lifts = [i for i, t in enumerate(types) if t == "lead_lift"]
    releases = [i for i, t in enumerate(types) if t in RELEASE_TYPES]
    if not lifts:
        problems.append(("steps", f"no 'lead_lift' step; a lead lift runs {ORDER_TEXT}"))
    for extra in lifts[1:]:
        problems.append(
            (
                at_step(extra, "type"),
                f"a second 'lead_lift' step (the first is steps[{lifts[0]}]); a lead lift has "
                "exactly one",
            )
        )
    if lifts:
        lift = lifts[0]
        before = [i for i in releases if i < lift]
        if not releases:
            problems.append(
                (
                    "steps",
                    "no release step (uv_release or heat_release): the lead tips are still "
                    "bonded to the support and lifting would tear the leads",
                )
            )
        elif not before:
            problems.append(
                (
                    at_step(releases[0], "type"),
                    f"'{types[releases[0]]}' comes after the 'lead_lift' (steps[{lift}]): the "
                    "tips must be released from the support before the support is moved away",
                )
            )
        for i, t in enumerate(types):
            if t in ("encapsulate", "cure", "support_release") and i < lift:
                problems.append(
                    (
                        at_step(i, "type"),
                        f"'{t}' cannot come before the 'lead_lift' (steps[{lift}]); the "
                        f"process order is {ORDER_TEXT}",
                    )
                )
    for i, t in enumerate(types):
        if t == "cure" and "encapsulate" not in types[:i]:
            problems.append(
                (
                    at_step(i, "type"),
                    "a 'cure' with no 'encapsulate' before it: there is nothing to cure",
                )
            )
        if t == "encapsulate" and "cure" in types[:i]:
            problems.append(
                (
                    at_step(i, "type"),
                    f"'encapsulate' after a 'cure'; the process order is {ORDER_TEXT}",
                )
            )
    sr = [i for i, t in enumerate(types) if t == "support_release"]
    if sr and sr[0] != len(types) - 1:
        problems.append(
            (
                at_step(sr[0], "type"),
                "'support_release' must be the last step: once the terminals are free the "
                "support no longer holds anything",
            )
        )
    return problems


def _names(recipe: LeadLiftRecipe) -> list[Problem]:
    problems: list[Problem] = []
    first_at: dict[str, int] = {}
    for i, step in enumerate(recipe.steps):
        if step.name in first_at:
            problems.append(
                (
                    at_step(i, "name"),
                    f"step name '{step.name}' is already used by steps[{first_at[step.name]}]; "
                    "names identify steps in records and reports and must be unique",
                )
            )
        first_at.setdefault(step.name, i)
    return problems


def _uv(
    i: int,
    recipe: LeadLiftRecipe,
    limits: Limits,
    *,
    irradiance: float,
    dose: float,
    timeout_s: float,
) -> list[Problem]:
    problems: list[Problem] = []
    adhesive = recipe.materials.adhesive
    need = adhesive.uv_release_dose_mj_cm2
    if need is None:
        problems.append(
            (
                at_step(i, "dose_mj_cm2"),
                f"the adhesive {adhesive.name} states no UV release dose "
                "(materials.adhesive.uv_release_dose_mj_cm2): a UV release cannot be judged; "
                "give the datasheet value or release by heat",
            )
        )
    elif dose < need:
        problems.append(
            (
                at_step(i, "dose_mj_cm2"),
                f"{num(dose)} mJ/cm² is below the {num(need)} mJ/cm² the adhesive "
                f"{adhesive.name} needs to release (materials.adhesive.uv_release_dose_mj_cm2)",
            )
        )
    if irradiance > limits.uv_irradiance_max_mw_cm2:
        problems.append(
            (
                at_step(i, "irradiance_mw_cm2"),
                f"{num(irradiance)} mW/cm² is above what the UV source delivers, "
                f"{num(limits.uv_irradiance_max_mw_cm2)} mW/cm² (limits.uv_irradiance_max_mw_cm2)",
            )
        )
    exposure = dose / irradiance
    if exposure >= timeout_s:
        problems.append(
            (
                at_step(i, "timeout_s"),
                f"{num(dose)} mJ/cm² at {num(irradiance)} mW/cm² takes {num(round(exposure, 1))} s "
                f"of exposure, not less than the step timeout {num(timeout_s)} s",
            )
        )
    return problems


def _heat(
    i: int,
    recipe: LeadLiftRecipe,
    limits: Limits,
    *,
    temperature_c: float,
    tolerance_c: float,
    time_s: float,
    timeout_s: float,
) -> list[Problem]:
    problems: list[Problem] = []
    problems += _heat_limit(i, "temperature_c", temperature_c + tolerance_c, recipe, limits)
    adhesive = recipe.materials.adhesive
    need_c, need_s = adhesive.heat_release_c, adhesive.heat_release_s
    if need_c is None or need_s is None:
        problems.append(
            (
                at_step(i, "temperature_c"),
                f"the adhesive {adhesive.name} states no heat release "
                "(materials.adhesive.heat_release_c and heat_release_s): a heat release "
                "cannot be judged; give the datasheet values or release by UV",
            )
        )
    else:
        if temperature_c - tolerance_c < need_c:
            problems.append(
                (
                    at_step(i, "temperature_c"),
                    f"{num(temperature_c)} °C − tolerance {num(tolerance_c)} °C may stay "
                    f"below the {num(need_c)} °C the adhesive {adhesive.name} needs to "
                    "release (materials.adhesive.heat_release_c)",
                )
            )
        if time_s < need_s:
            problems.append(
                (
                    at_step(i, "time_s"),
                    f"{num(time_s)} s is shorter than the {num(need_s)} s the adhesive "
                    f"{adhesive.name} needs at {num(need_c)} °C "
                    "(materials.adhesive.heat_release_s)",
                )
            )
    if time_s >= timeout_s:
        problems.append(
            (
                at_step(i, "time_s"),
                f"holding {num(time_s)} s cannot finish within the step timeout {num(timeout_s)} s",
            )
        )
    return problems


def _heat_limit(
    i: int,
    field: str | tuple[str | int, ...],
    hottest: float,
    recipe: LeadLiftRecipe,
    limits: Limits,
) -> list[Problem]:
    """A chuck temperature the step may reach: below solidus, Tg − margin and the circulator."""
    problems: list[Problem] = []
    parts = (field,) if isinstance(field, str) else field
    path = at_step(i, *parts)
    mats = recipe.materials
    solder, comp = mats.solder, mats.component
    tg_limit = comp.tg_c - comp.tg_margin_c
    if hottest >= solder.solidus_c:
        problems.append(
            (
                path,
                f"the chuck may reach {num(hottest)} °C, not below the solidus of {solder.name} "
                f"({num(solder.solidus_c)} °C): the joints made before would remelt",
            )
        )
    if hottest >= tg_limit:
        problems.append(
            (
                path,
                f"the chuck may reach {num(hottest)} °C, not below Tg − margin = "
                f"{num(comp.tg_c)} − {num(comp.tg_margin_c)} = {num(tg_limit)} °C of the "
                f"{comp.polymer} component",
            )
        )
    if hottest > limits.chuck_heat_setpoint_max_c:
        problems.append(
            (
                path,
                f"{num(hottest)} °C is above the heating circulator's range, "
                f"{num(limits.chuck_heat_setpoint_max_c)} °C (limits.chuck_heat_setpoint_max_c)",
            )
        )
    return problems


def _lift(i: int, step: LeadLiftStep, recipe: LeadLiftRecipe, limits: Limits) -> list[Problem]:
    problems: list[Problem] = []
    length = recipe.materials.leads.length_um
    if step.displacement_um > limits.z_travel_um:
        problems.append(
            (
                at_step(i, "displacement_um"),
                f"{num(step.displacement_um)} µm is beyond the Z stage's travel "
                f"{num(limits.z_travel_um)} µm (limits.z_travel_um)",
            )
        )
    if step.displacement_um > length:
        problems.append(
            (
                at_step(i, "displacement_um"),
                f"{num(step.displacement_um)} µm is more than the leads' length "
                f"{num(length)} µm (materials.leads.length_um): past vertical the leads are "
                "pulled taut and tear",
            )
        )
    if step.speed_um_s > limits.z_speed_max_um_s:
        problems.append(
            (
                at_step(i, "speed_um_s"),
                f"{num(step.speed_um_s)} µm/s is above the Z stage's top speed "
                f"{num(limits.z_speed_max_um_s)} µm/s (limits.z_speed_max_um_s)",
            )
        )
    if step.accel_um_s2 is not None and step.accel_um_s2 > limits.z_accel_max_um_s2:
        problems.append(
            (
                at_step(i, "accel_um_s2"),
                f"{num(step.accel_um_s2)} µm/s² is above the Z stage's acceleration limit "
                f"{num(limits.z_accel_max_um_s2)} µm/s² (limits.z_accel_max_um_s2)",
            )
        )
    if step.force_limit_n > limits.z_force_max_n:
        problems.append(
            (
                at_step(i, "force_limit_n"),
                f"{num(step.force_limit_n)} N is above the equipment's force limit "
                f"{num(limits.z_force_max_n)} N (limits.z_force_max_n)",
            )
        )
    if step.tolerance_um >= step.displacement_um:
        problems.append(
            (
                at_step(i, "tolerance_um"),
                f"a tolerance of {num(step.tolerance_um)} µm is not smaller than the "
                f"displacement {num(step.displacement_um)} µm: a lift that never moved would pass",
            )
        )
    accel = step.accel_um_s2 or limits.z_accel_default_um_s2
    least = step.displacement_um / step.speed_um_s + step.speed_um_s / accel + step.hold_s
    if least >= step.timeout_s:
        problems.append(
            (
                at_step(i, "timeout_s"),
                f"the move ({num(step.displacement_um)} µm at {num(step.speed_um_s)} µm/s) and "
                f"the hold take at least {num(round(least, 1))} s, not less than the step "
                f"timeout {num(step.timeout_s)} s",
            )
        )
    return problems


def _encapsulate(
    i: int, step: Encapsulate, recipe: LeadLiftRecipe, limits: Limits
) -> list[Problem]:
    problems: list[Problem] = []
    flow = recipe.materials.encapsulant.flow_ul_per_kpa_s
    if (step.volume_ul is None) == (step.time_s is None):
        problems.append(
            (
                at_step(i, "volume_ul"),
                "give either volume_ul (the shot time follows from the encapsulant's flow "
                "coefficient) or time_s (pressure × time), not both and not neither",
            )
        )
        return problems
    if step.pressure_kpa > limits.dispense_pressure_max_kpa:
        problems.append(
            (
                at_step(i, "pressure_kpa"),
                f"{num(step.pressure_kpa)} kPa is above the dispenser's pressure limit "
                f"{num(limits.dispense_pressure_max_kpa)} kPa (limits.dispense_pressure_max_kpa)",
            )
        )
    shot = (
        step.time_s
        if step.time_s is not None
        else (step.volume_ul or 0.0) / (flow * step.pressure_kpa)
    )
    if shot > limits.dispense_shot_max_s:
        field = "time_s" if step.time_s is not None else "volume_ul"
        problems.append(
            (
                at_step(i, field),
                f"the shot takes {num(round(shot, 2))} s at {num(step.pressure_kpa)} kPa "
                f"(flow coefficient {num(flow)} µL/(kPa·s)), longer than the dispenser's "
                f"longest shot {num(limits.dispense_shot_max_s)} s (limits.dispense_shot_max_s)",
            )
        )
    if shot + step.flow_in_s >= step.timeout_s:
        problems.append(
            (
                at_step(i, "timeout_s"),
                f"the shot ({num(round(shot, 2))} s) and the flow-in wait "
                f"({num(step.flow_in_s)} s) cannot finish within the step timeout "
                f"{num(step.timeout_s)} s",
            )
        )
    return problems


def _cure(i: int, step: Cure, recipe: LeadLiftRecipe, limits: Limits) -> list[Problem]:
    problems: list[Problem] = []
    enc = recipe.materials.encapsulant
    for j, seg in enumerate(step.segments):
        problems += _heat_limit(
            i, ("segments", j, "to_c"), seg.to_c + step.tolerance_c, recipe, limits
        )
        if enc.max_c is not None and seg.to_c + step.tolerance_c > enc.max_c:
            problems.append(
                (
                    at_step(i, "segments", j, "to_c"),
                    f"{num(seg.to_c)} °C + tolerance {num(step.tolerance_c)} °C is above the "
                    f"encapsulant's limit {num(enc.max_c)} °C (materials.encapsulant.max_c)",
                )
            )
    # The fastest the cure can go: the chuck exactly on the programmed profile (it lags it in
    # reality), then held at the last temperature until the target.
    temp, t, alpha = AMBIENT_C, 0.0, 0.0
    for seg in step.segments:
        ramp_s = abs(seg.to_c - temp) / seg.ramp_c_per_s
        n = max(1, int(ramp_s / _PROFILE_DT_S))
        for k in range(n):
            mid = temp + (seg.to_c - temp) * (k + 0.5) / n
            alpha = advance(enc.cure, alpha, mid, ramp_s / n)
        alpha = advance(enc.cure, alpha, seg.to_c, seg.hold_s)
        t += ramp_s + seg.hold_s
        temp = seg.to_c
    least = t + time_to(enc.cure, alpha, step.conversion_target, temp)
    if least >= step.timeout_s:
        what = "never" if least == float("inf") else f"at the earliest after {num(round(least))} s"
        problems.append(
            (
                at_step(i, "conversion_target"),
                f"conversion {num(step.conversion_target)} is reached {what} following the "
                f"profile and holding at {num(temp)} °C ({enc.name}: A {num(enc.cure.a_per_s)} 1/s, "
                f"Ea {num(enc.cure.ea_j_mol)} J/mol, n {num(enc.cure.n)}), not within the step "
                f"timeout {num(step.timeout_s)} s",
            )
        )
    return problems


def _support_release(
    i: int, step: SupportRelease, recipe: LeadLiftRecipe, limits: Limits
) -> list[Problem]:
    if step.method == "uv":
        missing = [k for k in ("irradiance_mw_cm2", "dose_mj_cm2") if getattr(step, k) is None]
        extra = [k for k in ("temperature_c", "time_s") if getattr(step, k) is not None]
    else:
        missing = [k for k in ("temperature_c", "time_s") if getattr(step, k) is None]
        extra = [k for k in ("irradiance_mw_cm2", "dose_mj_cm2") if getattr(step, k) is not None]
    problems: list[Problem] = [
        (at_step(i, k), f'required key is missing for method = "{step.method}"') for k in missing
    ]
    problems += [
        (at_step(i, k), f'does not apply to method = "{step.method}"; remove it') for k in extra
    ]
    if problems:
        return problems
    if step.method == "uv":
        assert step.irradiance_mw_cm2 is not None and step.dose_mj_cm2 is not None
        return _uv(
            i,
            recipe,
            limits,
            irradiance=step.irradiance_mw_cm2,
            dose=step.dose_mj_cm2,
            timeout_s=step.timeout_s,
        )
    assert step.temperature_c is not None and step.time_s is not None
    return _heat(
        i,
        recipe,
        limits,
        temperature_c=step.temperature_c,
        tolerance_c=step.tolerance_c,
        time_s=step.time_s,
        timeout_s=step.timeout_s,
    )
