"""Lead lift, release, encapsulation, cure and bump reflow in the simulated plant, checked
the way a process engineer would: against the model's analytic solutions and the effects an
operator sees on the machine (force on the Z head, vacuum switches, fill, conversion)."""

from __future__ import annotations

import itertools
import math

import pytest

from drivers.clock import ManualClock
from drivers.protocols import (
    OUT_CHUCK_VACUUM,
    OUT_SUPPORT_VACUUM,
    OUT_UV_ENABLE,
    VALVE_N2_PURGE,
    VALVE_PUMP,
    VALVE_VENT,
)
from drivers.sim.plant import GAS_CONSTANT, KELVIN, Plant, PlantFault, PlantParams
from tests.test_plant import make, run


def hold_both(plant: Plant, clock: ManualClock) -> None:
    plant.set_output(OUT_CHUCK_VACUUM, True)
    plant.set_output(OUT_SUPPORT_VACUUM, True)
    run(plant, clock, plant.params.vacuum_hold_s + 0.1)
    assert plant.chuck_vacuum_held and plant.support_vacuum_held


def expose_uv(plant: Plant, clock: ManualClock, mw_cm2: float, seconds: float) -> None:
    plant.uv_set_irradiance(mw_cm2)
    plant.set_output(OUT_UV_ENABLE, True)  # the remote-interlock line
    plant.uv_shutter(True)
    run(plant, clock, seconds, step=0.1)
    plant.uv_shutter(False)


def lift(
    plant: Plant,
    clock: ManualClock,
    to_um: float,
    speed: float = 50.0,
    watch: list[float] | None = None,
) -> None:
    """Move the stage to ``to_um`` and wait for it, recording the force each 10 ms."""
    plant.z_move(to_um, speed)
    limit = clock.t + abs(to_um - plant.z_um) / speed + 5.0
    while plant.z_moving:
        assert clock.t < limit, "stage did not arrive"
        clock.t += 0.01
        plant.advance()
        if watch is not None:
            watch.append(plant.force_n)


def heat_chuck(plant: Plant, clock: ManualClock, celsius: float, settle_s: float = 900.0) -> None:
    """The circulator brings the chuck (and the component on it) to ``celsius``."""
    plant.chiller_set_setpoint(celsius)
    plant.chiller_start()
    run(plant, clock, settle_s, step=1.0)


# ------------------------------------------------------------------ release


@pytest.mark.parametrize("dose", [100.0, 400.0, 1200.0])
def test_uv_degradation_follows_one_minus_exp_of_dose(dose: float) -> None:
    plant, clock = make()
    expose_uv(plant, clock, 100.0, dose / 100.0)
    s = plant.state
    d0 = plant.params.adhesive_d0_mj_cm2
    assert s.uv_dose_mj_cm2 == pytest.approx(dose, rel=1e-9)
    assert s.adhesive_degradation == pytest.approx(1.0 - math.exp(-dose / d0), rel=1e-6)
    assert s.bonded_fraction == pytest.approx(math.exp(-dose / d0), rel=1e-6)


def test_uv_release_depends_on_dose_not_on_irradiance() -> None:
    results = []
    for mw_cm2, seconds in ((50.0, 16.0), (200.0, 4.0)):
        plant, clock = make()
        expose_uv(plant, clock, mw_cm2, seconds)
        results.append(plant.state.adhesive_degradation)
    assert results[0] == pytest.approx(results[1], rel=1e-6)


def test_no_heat_release_at_room_temperature_over_minutes() -> None:
    plant, clock = make()
    heat_chuck(plant, clock, 23.0, settle_s=600.0)
    assert plant.state.component_c == pytest.approx(23.0, abs=0.5)
    assert plant.state.adhesive_degradation < 1e-5


def test_heat_release_rate_follows_arrhenius_in_the_support_side_temperature() -> None:
    p = PlantParams()
    rates = {}
    for celsius in (120.0, 150.0):
        plant, clock = make(p)
        heat_chuck(plant, clock, celsius)
        t_comp = plant.state.component_c
        x0 = plant.state.heat_release_exposure
        run(plant, clock, 60.0, step=0.5)
        assert plant.state.component_c == pytest.approx(t_comp, abs=0.2)  # steady
        rates[celsius] = ((plant.state.heat_release_exposure - x0) / 60.0, t_comp)
    (k_lo, t_lo), (k_hi, t_hi) = rates[120.0], rates[150.0]
    expected = math.exp(
        -p.heat_release_ea_j_mol / GAS_CONSTANT * (1 / (t_hi + KELVIN) - 1 / (t_lo + KELVIN))
    )
    assert k_hi / k_lo == pytest.approx(expected, rel=0.02)
    # At the reference temperature the rate is the documented one.
    k_at_ref = p.heat_release_k_ref_per_s * math.exp(
        -p.heat_release_ea_j_mol
        / GAS_CONSTANT
        * (1 / (t_hi + KELVIN) - 1 / (p.heat_release_t_ref_c + KELVIN))
    )
    assert k_hi == pytest.approx(k_at_ref, rel=0.01)
    # Degradation depends on time as well as temperature: two minutes near 150 °C release.
    assert k_hi * 120.0 > -math.log(1.0 - p.tips_released_at)


def test_uv_and_heat_combine_into_one_bonded_fraction() -> None:
    plant, clock = make()
    heat_chuck(plant, clock, 110.0, settle_s=600.0)
    x_heat = plant.state.heat_release_exposure
    plant.chiller_set_setpoint(23.0)
    expose_uv(plant, clock, 100.0, 3.0)
    s = plant.state
    assert s.heat_release_exposure >= x_heat > 0.05
    d0 = plant.params.adhesive_d0_mj_cm2
    assert s.bonded_fraction == pytest.approx(
        math.exp(-(s.uv_dose_mj_cm2 / d0 + s.heat_release_exposure)), rel=1e-9
    )


def test_uv_lamp_failure_mid_exposure_stops_the_dose_at_once() -> None:
    plant, clock = make()
    plant.uv_set_irradiance(100.0)
    plant.set_output(OUT_UV_ENABLE, True)  # the remote-interlock line
    plant.uv_shutter(True)
    plant.schedule_fault(PlantFault("uv", "fail"), 2.5)
    run(plant, clock, 6.0, step=1.0)  # the plant jumps past the fault time
    s = plant.state
    assert s.uv_dose_mj_cm2 == pytest.approx(250.0, rel=1e-9)
    assert not s.uv_shutter_open and plant.uv_failed


# --------------------------------------------------------------- lead lift


def released(plant: Plant, clock: ManualClock) -> None:
    expose_uv(plant, clock, 100.0, 15.0)  # 1500 mJ/cm² ≈ 3.75 D0: degradation 97.7 %
    assert plant.state.tips_released


def test_released_leads_bend_elastically_then_level_off_at_the_plastic_hinge() -> None:
    plant, clock = make()
    released(plant, clock)
    plant.z_home()
    hold_both(plant, clock)
    p = plant.params
    forces = {}
    for target in (50.0, 100.0, 400.0, 800.0):
        lift(plant, clock, target)
        forces[target] = plant.state.force_n
    assert forces[50.0] == pytest.approx(50.0 * p.k_lead_n_um, rel=1e-3)  # elastic
    assert forces[100.0] == pytest.approx(2.0 * forces[50.0], rel=1e-3)
    assert forces[400.0] == pytest.approx(p.lead_yield_force_n, rel=1e-3)  # levelled off
    assert forces[800.0] == pytest.approx(p.lead_yield_force_n, rel=1e-3)
    s = plant.state
    assert s.lead_plastic_set_um == pytest.approx(800.0 - p.lead_yield_force_n / p.k_lead_n_um)
    # Back down a little: elastic unloading; the leads keep their bend.
    lift(plant, clock, 750.0)
    assert plant.state.force_n == pytest.approx(p.lead_yield_force_n - 50.0 * p.k_lead_n_um)
    assert not plant.state.leads_torn


def test_attached_tips_give_a_steep_force_spike_then_tear_and_stay_torn() -> None:
    plant, clock = make()
    plant.z_home()
    hold_both(plant, clock)
    p = plant.params
    trace: list[tuple[float, float]] = []  # (z µm, force N) every 10 ms
    plant.z_move(400.0, 50.0)
    while plant.z_moving:
        clock.t += 0.01
        plant.advance()
        trace.append((plant.z_um, plant.force_n))
    z_peak, peak = max(trace, key=lambda zf: zf[1])
    tear_lo = p.lead_tear_force_n * (1.0 - p.lead_tear_spread)
    assert peak == pytest.approx(tear_lo, rel=0.02)  # the weakest leads go first
    assert z_peak == pytest.approx(tear_lo / p.k_tip_n_um, rel=0.02)  # steep: stretch stiffness
    # Past the peak the force falls as more leads tear, down to nothing.
    after = [f for z, f in trace if z > z_peak]
    assert after[-1] == 0.0 and all(b <= a + 1e-12 for a, b in itertools.pairwise(after))
    s = plant.state
    assert s.leads_torn and s.torn_fraction == 1.0 and s.force_n == 0.0
    assert not s.tips_released
    # Releasing the layer afterwards does not mend a torn lead.
    expose_uv(plant, clock, 100.0, 20.0)
    lift(plant, clock, 600.0)
    assert plant.state.torn_fraction == 1.0 and plant.state.force_n == 0.0


def test_force_limit_stops_the_stage_before_any_lead_tears() -> None:
    """The interlock's view: watch the load cell, stop at a limit below the tear force."""
    plant, clock = make()
    plant.z_home()
    hold_both(plant, clock)
    limit_n = 1.0
    plant.z_move(400.0, 50.0)
    while plant.z_moving:
        clock.t += 0.05  # the 20 Hz monitor
        plant.advance()
        if plant.force_n > limit_n:
            plant.z_stop()
    s = plant.state
    assert s.torn_fraction == 0.0 and s.tips_attached
    assert limit_n < s.force_n < limit_n + 0.1


def test_partly_degraded_layer_peels_off_with_a_small_spike_and_no_tear() -> None:
    plant, clock = make()
    expose_uv(plant, clock, 100.0, 8.0)  # 800 mJ/cm²: b = 13.5 %, pull-off ≈ 0.9 N
    pull_off = plant._tip_pull_off_n()
    assert 0.0 < pull_off < plant.params.lead_tear_force_n * (1 - plant.params.lead_tear_spread)
    plant.z_home()
    hold_both(plant, clock)
    forces: list[float] = []
    lift(plant, clock, 300.0, watch=forces)
    assert max(forces) == pytest.approx(pull_off, rel=0.05)
    s = plant.state
    assert s.tips_released and not s.leads_torn
    assert s.force_n == pytest.approx(plant.params.lead_yield_force_n, rel=1e-3)


def test_lift_without_the_support_hold_leaves_the_support_behind() -> None:
    plant, clock = make()
    released(plant, clock)
    plant.z_home()
    plant.set_output(OUT_CHUCK_VACUUM, True)
    run(plant, clock, 1.0)
    forces: list[float] = []
    lift(plant, clock, 500.0, watch=forces)
    s = plant.state
    assert max(forces) == 0.0 and s.lead_displacement_um == 0.0
    # The head is now away from the support: its vacuum cannot seal there.
    plant.set_output(OUT_SUPPORT_VACUUM, True)
    run(plant, clock, 2.0)
    assert not plant.state.support_vacuum_held


def test_lift_without_the_chuck_hold_lifts_the_whole_part() -> None:
    plant, clock = make()
    released(plant, clock)
    plant.z_home()
    plant.set_output(OUT_SUPPORT_VACUUM, True)
    run(plant, clock, 1.0)
    lift(plant, clock, 300.0)
    assert plant.state.force_n == 0.0 and plant.state.lead_displacement_um == 0.0


def test_a_hold_that_fails_mid_lift_lets_the_leads_spring_back() -> None:
    plant, clock = make()
    released(plant, clock)
    plant.z_home()
    hold_both(plant, clock)
    plant.z_move(600.0, 50.0)
    plant.schedule_fault(PlantFault("support_vacuum", "fail"), clock.t + 4.0)
    run(plant, clock, 14.0, step=0.05)
    s = plant.state
    assert not s.support_vacuum_held and not plant.inputs()["support_vacuum_ok"]
    assert s.force_n == 0.0
    assert s.lead_displacement_um == s.lead_plastic_set_um < 200.0  # bent only while held
    assert s.z_um == 600.0


def test_stall_fault_keeps_the_stage_busy_without_moving() -> None:
    plant, clock = make()
    plant.z_home()
    run(plant, clock, 0.1)
    plant.z_move(1000.0, 100.0)
    plant.schedule_fault(PlantFault("zstage", "stall"), clock.t + 2.0)
    run(plant, clock, 2.5)
    z_stuck = plant.z_um
    run(plant, clock, 5.0)
    s = plant.state
    assert s.z_moving and s.z_stalled and s.z_um == z_stuck < 1000.0
    assert s.z_target_um == 1000.0
    plant.z_stop()
    assert not plant.z_moving


# ------------------------------------------------------------- encapsulant


def test_dispensed_volume_is_pressure_times_time_over_viscosity() -> None:
    vols = []
    for viscosity in (5.0, 10.0):
        plant, clock = make(PlantParams(encapsulant_viscosity_pa_s=viscosity))
        plant.dispenser_set_pressure(300.0)
        plant.dispense(4.0)
        run(plant, clock, 5.0)
        vols.append(plant.state.dispensed_ul)
    p = PlantParams()
    r_m, l_m = p.needle_id_mm / 2 * 1e-3, p.needle_length_mm * 1e-3
    poiseuille_ul = 300e3 * 4.0 * math.pi * r_m**4 / (8 * 5.0 * l_m) * 1e9
    assert vols[0] == pytest.approx(poiseuille_ul, rel=1e-9)
    assert vols[1] == pytest.approx(vols[0] / 2.0, rel=1e-9)


def test_fill_rises_with_the_washburn_time_constant_and_overfill_is_tracked() -> None:
    plant, clock = make()
    released(plant, clock)
    plant.z_home()
    hold_both(plant, clock)
    lift(plant, clock, 450.0, speed=200.0)  # gap 500 µm: 50 µL under the support
    p = plant.params
    gap = plant.state.gap_ul
    assert gap == pytest.approx(p.gap_area_mm2 * (p.gap0_um + 450.0) * 1e-3)
    plant.dispenser_set_pressure(500.0)
    shot_s = 0.8 * gap / (500.0 * p.dispense_ul_per_kpa_s)  # 80 % of the gap
    plant.dispense(shot_s)
    run(plant, clock, shot_s)
    v = plant.state.dispensed_ul
    assert v == pytest.approx(0.8 * gap, rel=1e-6)
    in0 = plant.state.encapsulant_in_gap_ul
    tau = p.gap_flow_tau_s(p.gap0_um + 450.0)
    run(plant, clock, tau)
    s = plant.state
    # First order: the part not yet in the gap falls by 1/e per time constant.
    assert v - s.encapsulant_in_gap_ul == pytest.approx((v - in0) / math.e, rel=0.01)
    run(plant, clock, 10 * tau, step=1.0)
    assert plant.state.fill_fraction == pytest.approx(0.8, rel=1e-3)
    assert plant.state.overfill_ul == 0.0
    plant.dispense(shot_s)
    run(plant, clock, shot_s + 10 * tau, step=1.0)
    s = plant.state
    assert s.fill_fraction == 1.0
    assert s.overfill_ul == pytest.approx(0.6 * gap, rel=1e-3)


# -------------------------------------------------------------------- cure


def cure_at(params: PlantParams, celsius: float, seconds: float) -> tuple[float, float, float]:
    """Dispense a tiny shot on a chuck held at ``celsius``; (α after the shot, α after
    ``seconds`` more, component °C)."""
    plant, clock = make(params)
    heat_chuck(plant, clock, celsius)
    plant.dispenser_set_pressure(100.0)
    plant.dispense(0.01)
    run(plant, clock, 0.01)
    a0, t_c = plant.state.cure_conversion, plant.state.component_c
    run(plant, clock, seconds, step=0.5)
    assert plant.state.component_c == pytest.approx(t_c, abs=0.2)
    return a0, plant.state.cure_conversion, t_c


def test_nth_order_cure_matches_the_analytic_solution() -> None:
    p = PlantParams(cure_a2_per_s=0.0, cure_n=1.5)
    a0, a, t_c = cure_at(p, 150.0, 300.0)
    k = p.cure_a_per_s * math.exp(-p.cure_ea_j_mol / (GAS_CONSTANT * (t_c + KELVIN)))
    n = p.cure_n
    expected = 1.0 - ((1.0 - a0) ** (1 - n) + (n - 1) * k * 300.0) ** (1.0 / (1 - n))
    assert a == pytest.approx(expected, rel=2e-3)


def test_autocatalytic_cure_matches_the_analytic_solution() -> None:
    p = PlantParams(cure_m=1.0, cure_n=1.0)
    a0, a, t_c = cure_at(p, 140.0, 200.0)
    inv_rt = 1.0 / (GAS_CONSTANT * (t_c + KELVIN))
    k1 = p.cure_a_per_s * math.exp(-p.cure_ea_j_mol * inv_rt)
    k2 = p.cure_a2_per_s * math.exp(-p.cure_ea2_j_mol * inv_rt)
    # dα/dt = (k1 + k2·α)(1 − α): ln((k1 + k2·α)/(1 − α)) grows as (k1 + k2)·t.
    c = (k1 + k2 * a0) / (1.0 - a0) * math.exp((k1 + k2) * 200.0)
    expected = (c - k1) / (k2 + c)
    assert 0.2 < expected < 0.99
    assert a == pytest.approx(expected, rel=2e-3)


def test_default_encapsulant_snap_cures_at_150_c_and_keeps_at_room_temperature() -> None:
    _, hot, _ = cure_at(PlantParams(), 150.0, 300.0)
    assert hot > 0.95
    _, cold, _ = cure_at(PlantParams(), 23.0, 600.0)
    assert cold < 0.01


def test_nothing_cures_where_nothing_was_dispensed() -> None:
    plant, clock = make()
    heat_chuck(plant, clock, 150.0)
    assert plant.state.component_c > 140.0
    assert plant.state.cure_conversion == 0.0 and plant.state.dispensed_ul == 0.0


def test_circulator_heats_the_chuck_to_cure_temperature_and_energy_still_balances() -> None:
    plant, clock = make()
    e0 = plant.state.stored_energy_j
    heat_chuck(plant, clock, 150.0)
    s = plant.state
    assert s.chuck_c == pytest.approx(150.0, abs=1.5)
    assert s.energy_chiller_j < 0.0  # it heated
    net_in = s.energy_in_j - s.energy_chiller_j - s.energy_loss_j
    assert net_in == pytest.approx(s.stored_energy_j - e0, rel=1e-3)


# ------------------------------------------------------------- bump reflow


def n2_atmosphere(plant: Plant, clock: ManualClock) -> None:
    """Two purge cycles (1 mbar / 1000 mbar), then the N2 vent line: O2 under 1 ppm."""
    for _ in range(2):
        plant.set_valve(VALVE_PUMP, True)
        plant.pump_start()
        while plant.pressure_mbar > 1.0:
            clock.t += 0.01
            plant.advance()
        plant.set_valve(VALVE_PUMP, False)
        plant.set_valve(VALVE_N2_PURGE, True)
        while plant.pressure_mbar < 1000.0:
            clock.t += 0.01
            plant.advance()
        plant.set_valve(VALVE_N2_PURGE, False)
    plant.set_valve(VALVE_VENT, True)
    run(plant, clock, 5.0)
    assert plant.state.o2_ppm < 1.0


def reflow_at(o2_air: bool, hold_s: float) -> tuple[float, float]:
    """Paste of a low-melting solder on a chuck held above its liquidus: (coalescence,
    O2 partial pressure mbar)."""
    plant, clock = make()
    plant.set_solder(60.0, 61.0)
    if not o2_air:
        n2_atmosphere(plant, clock)
    heat_chuck(plant, clock, 90.0, settle_s=600.0)
    c0 = plant.state.coalescence
    run(plant, clock, hold_s, step=0.1)
    s = plant.state
    assert s.chip_c > 80.0 and s.melt_fraction == 1.0
    return 1.0 - (1.0 - s.coalescence) / (1.0 - c0) if c0 < 1.0 else 1.0, s.o2_partial_mbar


def test_paste_does_not_coalesce_below_liquidus() -> None:
    plant, clock = make()
    plant.set_solder(217.0, 220.0)
    n2_atmosphere(plant, clock)
    heat_chuck(plant, clock, 150.0)
    assert plant.state.coalescence == 0.0


def test_paste_coalesces_above_liquidus_with_its_time_constant_under_n2() -> None:
    plant, clock = make()
    plant.set_solder(60.0, 61.0)
    n2_atmosphere(plant, clock)
    heat_chuck(plant, clock, 90.0, settle_s=600.0)
    s = plant.state
    assert s.melt_fraction == 1.0 and s.coalescence > 0.999


def test_oxygen_slows_coalescence_as_documented() -> None:
    p = PlantParams()
    c_air, po2 = reflow_at(True, 60.0)
    f = 1.0 / (1.0 + po2 / p.coalesce_o2_half_mbar)
    expected = 1.0 - math.exp(-60.0 * f / p.coalesce_tau_s)
    assert c_air == pytest.approx(expected, rel=0.01)
    assert c_air < 0.05  # an oxide skin in air: the strips stay strips


def test_a_failed_hold_pulls_again_once_repaired() -> None:
    plant, clock = make()
    hold_both(plant, clock)
    plant.schedule_fault(PlantFault("chuck_vacuum", "fail"), clock.t)
    run(plant, clock, 1.0)
    assert not plant.chuck_vacuum_held and plant.support_vacuum_held
    plant.clear_faults()
    run(plant, clock, 0.5 * plant.params.vacuum_hold_s)
    assert not plant.chuck_vacuum_held
    run(plant, clock, plant.params.vacuum_hold_s)
    assert plant.chuck_vacuum_held
