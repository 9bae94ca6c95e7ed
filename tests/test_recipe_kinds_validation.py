"""Validation of the lead-lift and bump-reflow recipe kinds: every refusal names the file,
the field path and a reason a process engineer can act on."""

from __future__ import annotations

import textwrap

import pytest

from daemon.config import Limits
from daemon.recipe.load import RecipeInvalid, parse_recipe
from daemon.recipe.model import BumpReflowRecipe, LeadLiftRecipe

LIMITS = Limits()
SOURCE = "lift.toml"

# Step indices: 0 uv_release, 1 lead_lift, 2 encapsulate, 3 cure, 4 support_release.
LIFT = textwrap.dedent(
    """\
    kind = "lead_lift"
    name = "lift"

    [materials.solder]
    name = "SAC305"
    solidus_c = 217.0
    liquidus_c = 220.0

    [materials.component]
    polymer = "polyimide"
    tg_c = 360.0
    tg_margin_c = 40.0

    [materials.adhesive]
    name = "uv acrylic"
    uv_release_dose_mj_cm2 = 1200.0
    heat_release_c = 150.0
    heat_release_s = 60.0

    [materials.encapsulant]
    name = "underfill"
    flow_ul_per_kpa_s = 0.0109
    cure = { a_per_s = 3.9e6, ea_j_mol = 70000.0, n = 1.5 }

    [materials.leads]
    length_um = 600.0

    [[steps]]
    type = "uv_release"
    irradiance_mw_cm2 = 100.0
    dose_mj_cm2 = 1500.0
    timeout_s = 60.0

    [[steps]]
    type = "lead_lift"
    displacement_um = 500.0
    speed_um_s = 50.0
    force_limit_n = 1.0
    hold_s = 5.0
    timeout_s = 60.0

    [[steps]]
    type = "encapsulate"
    pressure_kpa = 300.0
    volume_ul = 50.0
    flow_in_s = 60.0
    timeout_s = 180.0

    [[steps]]
    type = "cure"
    conversion_target = 0.9
    timeout_s = 2400.0

    [[steps.segments]]
    ramp_c_per_s = 0.5
    to_c = 150.0
    hold_s = 60.0

    [[steps]]
    type = "support_release"
    method = "uv"
    irradiance_mw_cm2 = 100.0
    dose_mj_cm2 = 1500.0
    timeout_s = 60.0
    """
)

HEAT_RELEASE = textwrap.dedent(
    """\
    [[steps]]
    type = "heat_release"
    temperature_c = 155.0
    tolerance_c = 3.0
    time_s = 90.0
    timeout_s = 900.0
    """
)

UV_RELEASE = textwrap.dedent(
    """\
    [[steps]]
    type = "uv_release"
    irradiance_mw_cm2 = 100.0
    dose_mj_cm2 = 1500.0
    timeout_s = 60.0
    """
)


def issues(text: str, limits: Limits = LIMITS) -> list[tuple[str, str, str]]:
    with pytest.raises(RecipeInvalid) as info:
        parse_recipe(text.encode(), SOURCE, limits)
    return [(i.file, i.field, i.reason) for i in info.value.issues]


def only(text: str, limits: Limits = LIMITS) -> tuple[str, str]:
    found = issues(text, limits)
    assert len(found) == 1, found
    file, field, reason = found[0]
    assert file == SOURCE
    return field, reason


def edit(old: str, new: str, base: str = LIFT) -> str:
    assert old in base, old
    return base.replace(old, new, 1)


def test_base_lift_recipe_is_valid() -> None:
    loaded = parse_recipe(LIFT.encode(), SOURCE, LIMITS)
    assert isinstance(loaded.recipe, LeadLiftRecipe)
    assert [s.type for s in loaded.recipe.steps] == [
        "uv_release",
        "lead_lift",
        "encapsulate",
        "cure",
        "support_release",
    ]


def test_lift_without_release_is_refused() -> None:
    field, reason = only(LIFT.replace(UV_RELEASE, "", 1))
    assert field == "steps"
    assert "no release step" in reason and "tear" in reason


def test_release_after_the_lift_is_refused() -> None:
    text = LIFT.replace(UV_RELEASE, "", 1)
    text = edit(
        '[[steps]]\ntype = "encapsulate"', UV_RELEASE + '\n[[steps]]\ntype = "encapsulate"', text
    )
    field, reason = only(text)
    assert field == "steps[1].type"
    assert "after the 'lead_lift'" in reason and "before the support is moved" in reason


def test_uv_dose_below_the_adhesive_spec_is_refused() -> None:
    field, reason = only(
        edit("dose_mj_cm2 = 1500.0\ntimeout_s = 60.0", "dose_mj_cm2 = 800.0\ntimeout_s = 60.0")
    )
    assert field == "steps[0].dose_mj_cm2"
    assert "800" in reason and "1200" in reason and "uv_release_dose_mj_cm2" in reason


def test_uv_release_with_an_adhesive_stating_no_dose_is_refused() -> None:
    found = issues(edit("uv_release_dose_mj_cm2 = 1200.0\n", ""))
    # Both UV exposures (the release and the support release) are judged on that dose.
    assert [f for _, f, _ in found] == ["steps[0].dose_mj_cm2", "steps[4].dose_mj_cm2"]
    assert all("states no UV release dose" in r for _, _, r in found)


def test_heat_release_too_cold_or_too_short_is_refused() -> None:
    text = LIFT.replace(UV_RELEASE, HEAT_RELEASE, 1)
    parse_recipe(text.encode(), SOURCE, LIMITS)  # the heat variant itself is valid
    cold = edit("temperature_c = 155.0", "temperature_c = 140.0", text)
    field, reason = only(cold)
    assert field == "steps[0].temperature_c"
    assert "140" in reason and "150" in reason and "heat_release_c" in reason
    short = edit("time_s = 90.0", "time_s = 30.0", text)
    field, reason = only(short)
    assert field == "steps[0].time_s"
    assert "30 s is shorter than the 60 s" in reason


def test_heat_at_or_above_solidus_or_tg_margin_is_refused() -> None:
    text = LIFT.replace(UV_RELEASE, HEAT_RELEASE, 1)
    hot = edit("temperature_c = 155.0", "temperature_c = 215.0", text)
    found = issues(hot, Limits(chuck_heat_setpoint_max_c=250.0))
    reasons = [r for _, f, r in found if f == "steps[0].temperature_c"]
    assert any("solidus of SAC305 (217 °C)" in r for r in reasons), found
    low_tg = edit("tg_c = 360.0", "tg_c = 170.0", text)
    found = issues(low_tg)
    assert any(
        f == "steps[0].temperature_c" and "Tg − margin = 170 − 40 = 130" in r for _, f, r in found
    ), found


def test_cure_above_solidus_is_refused_at_its_segment() -> None:
    found = issues(edit("to_c = 150.0", "to_c = 216.0"), Limits(chuck_heat_setpoint_max_c=250.0))
    assert any(f == "steps[3].segments[0].to_c" and "solidus" in r for _, f, r in found), found


def test_displacement_beyond_the_leads_is_refused() -> None:
    field, reason = only(edit("displacement_um = 500.0", "displacement_um = 650.0"))
    assert field == "steps[1].displacement_um"
    assert "leads' length 600" in reason and "tear" in reason


def test_displacement_beyond_the_stage_travel_is_refused() -> None:
    found = issues(LIFT, Limits(z_travel_um=400.0))
    assert ("lift.toml", "steps[1].displacement_um") in [(f, p) for f, p, _ in found]
    assert any("travel 400 µm (limits.z_travel_um)" in r for _, _, r in found)


def test_speed_and_force_beyond_the_equipment_are_refused() -> None:
    field, reason = only(edit("speed_um_s = 50.0", "speed_um_s = 5000.0"))
    assert field == "steps[1].speed_um_s" and "limits.z_speed_max_um_s" in reason
    field, reason = only(edit("force_limit_n = 1.0", "force_limit_n = 50.0"))
    assert field == "steps[1].force_limit_n" and "limits.z_force_max_n" in reason


def test_uv_irradiance_beyond_the_source_is_refused() -> None:
    text = edit(
        "irradiance_mw_cm2 = 100.0\ndose_mj_cm2 = 1500.0\ntimeout_s = 60.0",
        "irradiance_mw_cm2 = 500.0\ndose_mj_cm2 = 1500.0\ntimeout_s = 60.0",
    )
    field, reason = only(text)
    assert field == "steps[0].irradiance_mw_cm2" and "limits.uv_irradiance_max_mw_cm2" in reason


def test_dispense_needs_volume_or_time_and_a_possible_shot() -> None:
    field, reason = only(edit("volume_ul = 50.0", "volume_ul = 50.0\ntime_s = 3.0"))
    assert field == "steps[2].volume_ul" and "either volume_ul" in reason
    field, reason = only(edit("pressure_kpa = 300.0", "pressure_kpa = 900.0"))
    assert field == "steps[2].pressure_kpa" and "limits.dispense_pressure_max_kpa" in reason
    found = issues(edit("volume_ul = 50.0", "volume_ul = 200.0"))
    assert found[0][1] == "steps[2].volume_ul" and "longest shot" in found[0][2], found


def test_cure_target_the_kinetics_cannot_reach_in_time_is_refused() -> None:
    field, reason = only(edit("timeout_s = 2400.0", "timeout_s = 300.0"))
    assert field == "steps[3].conversion_target"
    assert "not within the step timeout 300 s" in reason


def test_cure_without_encapsulation_is_refused() -> None:
    text = edit(
        'type = "encapsulate"\npressure_kpa = 300.0\nvolume_ul = 50.0\nflow_in_s = 60.0\ntimeout_s = 180.0\n\n[[steps]]\n',
        "",
    )
    found = issues(text)
    assert ("lift.toml", "steps[2].type") in [(f, p) for f, p, _ in found], found
    assert any("nothing to cure" in r for _, _, r in found)


def test_support_release_by_uv_needs_its_dose() -> None:
    text = LIFT.rsplit("dose_mj_cm2 = 1500.0", 1)
    field, reason = only(text[0] + text[1])
    assert field == "steps[4].dose_mj_cm2"
    assert 'method = "uv"' in reason


BUMP = textwrap.dedent(
    """\
    kind = "bump_reflow"
    name = "bump"

    [materials.solder]
    name = "SAC305"
    solidus_c = 217.0
    liquidus_c = 220.0

    [materials.paste]
    name = "paste"

    [materials.carrier]
    name = "glass"
    max_c = 300.0

    [atmosphere]
    o2_max_ppm = 50.0

    [[steps]]
    type = "chuck_stabilize"
    setpoint_c = 25.0

    [[steps]]
    type = "purge"
    cycles = 2
    pump_to_mbar = 1.0
    backfill_to_mbar = 1000.0
    o2_target_ppm = 10.0

    [[steps]]
    type = "reflow"
    peak_window_c = { min = 235.0, max = 252.0 }
    time_above_liquidus_s = { min = 20.0, max = 75.0 }
    max_ramp_c_per_s = 4.0

    [[steps.segments]]
    ramp_c_per_s = 2.5
    to_c = 150.0
    hold_s = 20.0

    [[steps.segments]]
    ramp_c_per_s = 2.0
    to_c = 243.0
    hold_s = 10.0

    [[steps]]
    type = "cool"
    to_c = 150.0
    max_rate_c_per_s = 3.0

    [[steps]]
    type = "vent"
    """
)


def test_base_bump_recipe_is_valid() -> None:
    loaded = parse_recipe(BUMP.encode(), SOURCE, LIMITS)
    assert isinstance(loaded.recipe, BumpReflowRecipe)


def test_bump_profile_outside_its_peak_window_is_refused() -> None:
    field, reason = only(edit("to_c = 243.0", "to_c = 260.0", BUMP))
    assert field == "steps[2].segments[1].to_c"
    assert "outside the peak window 235–252" in reason


def test_bump_time_above_liquidus_window_inconsistent_with_the_profile_is_refused() -> None:
    field, reason = only(edit("hold_s = 10.0", "hold_s = 80.0", BUMP))
    assert field == "steps[2].time_above_liquidus_s.max"
    assert "above liquidus for at least" in reason


def test_bump_needs_a_minimum_time_above_liquidus() -> None:
    field, reason = only(edit("min = 20.0, max = 75.0", "min = 0.0, max = 75.0", BUMP))
    assert field == "steps[2].time_above_liquidus_s.min"
    assert "coalesce" in reason or "masses" in reason


def test_bump_reflow_under_a_partial_vacuum_is_refused() -> None:
    field, reason = only(edit("backfill_to_mbar = 1000.0", "backfill_to_mbar = 300.0", BUMP))
    assert field == "steps[1].backfill_to_mbar"
    assert "nitrogen at ≥ 800 mbar" in reason


def test_bump_with_a_pump_down_is_refused() -> None:
    text = edit(
        '[[steps]]\ntype = "reflow"',
        '[[steps]]\ntype = "pump_down"\ntarget_mbar = 2.0\n\n[[steps]]\ntype = "reflow"',
        BUMP,
    )
    found = issues(text)
    assert any(
        f == "steps[2].type" and "unknown step type 'pump_down'" in r for _, f, r in found
    ), found


def test_bump_chuck_above_the_carrier_limit_is_refused() -> None:
    found = issues(edit("max_c = 300.0", "max_c = 25.0", BUMP))
    assert any(
        f == "steps[0].setpoint_c" and "glass carrier's limit 25 °C" in r for _, f, r in found
    ), found
