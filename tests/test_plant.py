"""The simulated plant checked the way a process engineer would check the real machine."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from drivers.clock import ManualClock
from drivers.protocols import (
    OUT_FILM_CLAMP,
    OUT_LAMP_CONTACTOR,
    OUT_SCR_ENABLE,
    OUT_UV_ENABLE,
    VALVE_N2_PURGE,
    VALVE_PUMP,
    VALVE_VENT,
)
from drivers.sim.plant import Plant, PlantFault, PlantParams


def make(params: PlantParams | None = None) -> tuple[Plant, ManualClock]:
    clock = ManualClock()
    return Plant(clock, params), clock


def run(
    plant: Plant,
    clock: ManualClock,
    seconds: float,
    step: float = 0.05,
    each: Callable[[], None] | None = None,
) -> None:
    """Advance the plant ``seconds`` in polls of ``step`` (like a control loop would)."""
    end = clock.t + seconds
    while clock.t < end - 1e-12:
        clock.t = min(end, clock.t + step)
        plant.advance()
        if each is not None:
            each()


def run_until(
    plant: Plant, clock: ManualClock, cond: Callable[[], bool], limit_s: float, step: float = 0.01
) -> float:
    """Advance until ``cond()`` holds; return the time it took."""
    start = clock.t
    while not cond():
        if clock.t - start > limit_s:
            raise AssertionError(f"condition not reached within {limit_s} s")
        clock.t += step
        plant.advance()
    return clock.t - start


def lamps_on(plant: Plant, pct: float) -> None:
    plant.set_output(OUT_LAMP_CONTACTOR, True)
    plant.set_output(OUT_SCR_ENABLE, True)
    plant.set_lamp_power([pct] * plant.params.zones)


def pump_down(plant: Plant) -> None:
    plant.set_valve(VALVE_PUMP, True)
    plant.pump_start()


def bond_ready(plant: Plant, clock: ManualClock) -> None:
    """Chuck stabilized by the chiller at 20 °C, film clamped, working space under vacuum."""
    plant.set_output(OUT_FILM_CLAMP, True)
    plant.chiller_start()
    pump_down(plant)
    run(plant, clock, 150.0, step=1.0)


# ---------------------------------------------------------------- start state


def test_starts_at_ambient_air_everything_off() -> None:
    plant, _ = make()
    s = plant.state
    for temp in (s.chip_c, s.component_c, s.chuck_c, s.fluid_c):
        assert temp == pytest.approx(23.0)
    assert s.pressure_mbar == pytest.approx(1013.0)
    assert s.o2_ppm == pytest.approx(209_000.0)
    assert s.melt_fraction == 0.0
    assert not s.chiller_running and not s.pump_running and not s.contactor_energized
    assert s.chiller_setpoint_c == 20.0
    assert s.filament_w == (0.0, 0.0, 0.0, 0.0)


def test_params_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="dt_s"):
        PlantParams(dt_s=0.0)
    with pytest.raises(ValueError, match="solidus"):
        PlantParams(solidus_c=230.0, liquidus_c=220.0)
    with pytest.raises(ValueError, match="finite"):
        PlantParams(volume_l=math.nan)


# ----------------------------------------------------------------------- vacuum


def test_pump_down_time_matches_volume_over_pump_speed() -> None:
    plant, clock = make()
    pump_down(plant)
    t_1000 = run_until(plant, clock, lambda: plant.pressure_mbar <= 1000.0, 5.0, step=0.001)
    t_1 = run_until(plant, clock, lambda: plant.pressure_mbar <= 1.0, 20.0, step=0.001)
    p = plant.params
    expected = p.volume_l / p.pump_speed_l_s * math.log(1000.0 / 1.0)
    assert t_1000 < 0.05
    assert t_1 == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("dt_s", [0.002, 0.025, 0.05])
def test_pump_down_follows_volume_over_pump_speed_at_any_substep(dt_s: float) -> None:
    # The pump and the leak are linear in the pressure: p relaxes toward the base pressure
    # with τ = V / (S + leak / p_atm), whatever the integration substep (docs/adr/0121).
    plant, clock = make(PlantParams(dt_s=dt_s))
    pump_down(plant)
    run(plant, clock, 4.0)
    p = plant.params
    g = p.pump_speed_l_s + p.leak_mbar_l_s / p.p_atm_mbar
    base = (p.leak_mbar_l_s + p.pump_speed_l_s * p.pump_ultimate_mbar) / g
    expected = base + (p.p_atm_mbar - base) * math.exp(-4.0 * g / p.volume_l)
    assert plant.pressure_mbar == pytest.approx(expected, rel=1e-9)
    assert plant.o2_ppm == pytest.approx(p.o2_air_ppm, rel=1e-6)  # pumped as it is mixed


@pytest.mark.parametrize("dt_s", [0.002, 0.025, 0.05])
def test_vent_fills_with_the_vent_line_time_constant_at_any_substep(dt_s: float) -> None:
    plant, clock = make(PlantParams(dt_s=dt_s))
    pump_down(plant)
    run(plant, clock, 10.0)
    plant.set_valve(VALVE_PUMP, False)
    p0 = plant.pressure_mbar
    plant.set_valve(VALVE_VENT, True)
    run(plant, clock, 0.4)  # two time constants of the 5 L/s vent line into 1 L
    p = plant.params
    g = p.vent_conductance_l_s + p.leak_mbar_l_s / p.p_atm_mbar
    expected = p.p_atm_mbar - (p.p_atm_mbar - p0) * math.exp(-0.4 * g / p.volume_l)
    assert plant.pressure_mbar == pytest.approx(expected, rel=1e-9)


def test_n2_backfill_does_not_depend_on_the_substep() -> None:
    # The N2 inflow is not linear in the pressure near the supply's: its substep mean.
    def backfill(dt_s: float) -> float:
        plant, clock = make(PlantParams(dt_s=dt_s))
        pump_down(plant)
        run(plant, clock, 10.0)
        plant.set_valve(VALVE_PUMP, False)
        plant.set_valve(VALVE_N2_PURGE, True)
        run(plant, clock, 4.0)  # through the choked range well into the elliptic one
        return plant.pressure_mbar

    fine = backfill(0.001)
    assert 900.0 < fine < 1100.0
    assert backfill(0.025) == pytest.approx(fine, abs=0.05)


def test_pump_needs_its_isolation_valve_open() -> None:
    plant, clock = make()
    plant.pump_start()
    run(plant, clock, 5.0)
    assert plant.state.pressure_mbar == pytest.approx(1013.0)
    assert not plant.state.pumping


def test_base_pressure_is_set_by_ultimate_and_leak() -> None:
    plant, clock = make()
    pump_down(plant)
    run(plant, clock, 30.0, step=1.0)
    p = plant.params
    expected = p.pump_ultimate_mbar + p.leak_mbar_l_s / p.pump_speed_l_s
    assert plant.state.pressure_mbar == pytest.approx(expected, rel=0.02)


def purge_cycle(plant: Plant, clock: ManualClock, low: float, high: float) -> None:
    plant.set_valve(VALVE_PUMP, True)
    plant.pump_start()
    run_until(plant, clock, lambda: plant.pressure_mbar <= low, 30.0)
    plant.set_valve(VALVE_PUMP, False)
    plant.set_valve(VALVE_N2_PURGE, True)
    run_until(plant, clock, lambda: plant.pressure_mbar >= high, 30.0)
    plant.set_valve(VALVE_N2_PURGE, False)


def test_one_purge_cycle_gives_about_200_ppm_and_two_below_1_ppm() -> None:
    plant, clock = make()
    purge_cycle(plant, clock, 1.0, 1000.0)
    first = plant.state.o2_ppm
    purge_cycle(plant, clock, 1.0, 1000.0)
    second = plant.state.o2_ppm
    assert first == pytest.approx(209.0, rel=0.1)
    assert second < 1.0


def test_pumping_does_not_change_the_o2_fraction() -> None:
    plant, clock = make()
    pump_down(plant)
    run_until(plant, clock, lambda: plant.pressure_mbar <= 10.0, 10.0)
    assert plant.state.o2_ppm == pytest.approx(209_000.0, rel=1e-3)


def test_n2_backfill_stops_near_supply_pressure() -> None:
    plant, clock = make()
    plant.set_valve(VALVE_N2_PURGE, True)
    run(plant, clock, 30.0, step=0.5)
    p = plant.state.pressure_mbar
    assert 1090.0 < p < plant.params.n2_supply_mbar + 0.01


def test_vent_equalizes_to_atmosphere_with_nitrogen() -> None:
    plant, clock = make()
    purge_cycle(plant, clock, 1.0, 1000.0)
    pump_down(plant)
    run(plant, clock, 10.0)
    plant.set_valve(VALVE_PUMP, False)
    plant.set_valve(VALVE_VENT, True)
    run(plant, clock, 2.0)
    s = plant.state
    assert s.pressure_mbar == pytest.approx(1013.0, abs=1.0)
    assert s.o2_ppm < 1.0  # the vent line carries N2, not air


# ---------------------------------------------------------------------- thermal


def test_full_lamps_under_vacuum_ramp_the_chip_faster_than_10_k_per_s() -> None:
    plant, clock = make()
    bond_ready(plant, clock)
    lamps_on(plant, 100.0)
    run(plant, clock, 0.5)  # filaments come up (tau 0.25 s)
    t0, c0 = clock.t, plant.state.chip_c
    run(plant, clock, 2.0)
    rate = (plant.state.chip_c - c0) / (clock.t - t0)
    assert rate > 10.0
    assert plant.state.chip_c > plant.state.component_c + 50.0


def test_filament_output_is_first_order() -> None:
    plant, clock = make()
    lamps_on(plant, 50.0)
    run(plant, clock, plant.params.filament_tau_s, step=0.01)
    expected = 500.0 * (1.0 - math.exp(-1.0))
    for w in plant.state.filament_w:
        assert w == pytest.approx(expected, rel=0.01)


def test_holding_245_c_under_vacuum_keeps_the_component_below_100_c() -> None:
    plant, clock = make()
    bond_ready(plant, clock)
    assert plant.state.chuck_c == pytest.approx(20.0, abs=0.5)
    plant.set_solder(217.0, 220.0)
    lamps_on(plant, 0.0)
    hold_start: list[float] = []
    worst = {"component": 0.0, "chip_err": 0.0}

    def control() -> None:
        # Proportional loop on the chip thermocouple junction with a feed-forward bias.
        chip = plant.tc_junction("chip")
        pct = min(100.0, max(0.0, 55.0 + 8.0 * (245.0 - chip)))
        plant.set_lamp_power([pct] * 4)
        s = plant.state
        worst["component"] = max(worst["component"], s.component_c)
        if not hold_start and s.chip_c >= 244.0:
            hold_start.append(clock.t)
        if hold_start and clock.t - hold_start[0] > 5.0:
            worst["chip_err"] = max(worst["chip_err"], abs(s.chip_c - 245.0))
        assert s.chip_c > s.component_c  # the chips are hotter the whole time

    run(plant, clock, 45.0, step=0.05, each=control)
    assert hold_start and hold_start[0] < clock.t - 30.0  # held for more than 30 s
    assert worst["chip_err"] < 2.0
    assert plant.state.melt_fraction == 1.0
    assert 60.0 < worst["component"] < 100.0


def test_energy_balance_closes_over_heating_and_cooling() -> None:
    plant, clock = make()
    e0 = plant.state.stored_energy_j
    bond_ready(plant, clock)
    lamps_on(plant, 70.0)
    run(plant, clock, 8.0)
    plant.set_lamp_power([0.0] * 4)
    run(plant, clock, 60.0)
    s = plant.state
    assert s.melt_fraction == 0.0 and s.energy_in_j > 5_000.0
    net_in = s.energy_in_j - s.energy_chiller_j - s.energy_loss_j
    stored = s.stored_energy_j - e0
    assert net_in == pytest.approx(stored, abs=0.01 * s.energy_in_j)


def test_energy_balance_holds_while_solder_is_molten() -> None:
    plant, clock = make()
    e0 = plant.state.stored_energy_j
    pump_down(plant)
    lamps_on(plant, 60.0)
    run_until(plant, clock, lambda: plant.state.melt_fraction > 0.5, 30.0)
    s = plant.state
    net_in = s.energy_in_j - s.energy_chiller_j - s.energy_loss_j
    assert net_in == pytest.approx(s.stored_energy_j - e0, abs=0.01 * s.energy_in_j)


def test_contactor_off_means_no_heating_even_with_an_scr_stuck_on() -> None:
    plant, clock = make()
    plant.schedule_fault(PlantFault("lamps", "stuck_on"), at_t=0.0)
    plant.set_output(OUT_SCR_ENABLE, True)
    run(plant, clock, 5.0)
    s = plant.state
    assert s.lamp_output_pct == (0.0, 0.0, 0.0, 0.0)
    assert s.energy_in_j == 0.0
    assert s.chip_c == pytest.approx(23.0, abs=0.01)
    # The contactor is the only thing that cuts a shorted SCR: disabling the SCR does not.
    plant.set_output(OUT_SCR_ENABLE, False)
    plant.set_output(OUT_LAMP_CONTACTOR, True)
    run(plant, clock, 2.0)
    assert plant.state.lamp_output_pct == (100.0, 100.0, 100.0, 100.0)
    assert plant.state.chip_c > 60.0


def test_scr_enable_off_cuts_healthy_lamps() -> None:
    plant, clock = make()
    lamps_on(plant, 80.0)
    plant.set_output(OUT_SCR_ENABLE, False)
    run(plant, clock, 2.0)
    assert plant.state.energy_in_j == 0.0


def rate_between(plant: Plant, clock: ManualClock, lo: float, hi: float) -> float:
    """Mean chip heating rate (true temperature) while it climbs from ``lo`` to ``hi``."""
    run_until(plant, clock, lambda: plant.state.chip_c >= lo, 60.0, step=0.005)
    t0, c0 = clock.t, plant.state.chip_c
    run_until(plant, clock, lambda: plant.state.chip_c >= hi, 60.0, step=0.005)
    return (plant.state.chip_c - c0) / (clock.t - t0)


def test_latent_heat_slows_the_ramp_through_the_melting_band() -> None:
    # Without the wetting conductance, so that only the latent heat changes inside the band.
    plant, clock = make(PlantParams(g_chip_comp_melt_w_k=0.0))
    lamps_on(plant, 15.0)
    below = rate_between(plant, clock, 212.5, 215.5)
    assert plant.state.melt_fraction == 0.0
    inside = rate_between(plant, clock, 217.5, 219.5)
    above = rate_between(plant, clock, 221.0, 224.0)
    assert plant.state.melt_fraction == 1.0
    # C_eff in the band = C + L/(liquidus − solidus) = 25 + 60/3 = 45 J/K.
    assert inside == pytest.approx(below * 25.0 / 45.0, rel=0.15)
    assert above > 1.5 * inside


def test_molten_solder_conducts_more_heat_to_the_component() -> None:
    plant, clock = make()
    pump_down(plant)
    run(plant, clock, 20.0, step=1.0)
    solid = plant.state.g_chip_component_w_k
    lamps_on(plant, 100.0)
    run_until(plant, clock, lambda: plant.state.melt_fraction >= 1.0, 10.0)
    molten = plant.state.g_chip_component_w_k
    assert molten - solid == pytest.approx(plant.params.g_chip_comp_melt_w_k, rel=1e-3)


def freezing_time(latent_j: float) -> float:
    """Time the chip takes to cool from 222 °C (molten) to 216 °C (solid)."""
    plant, clock = make(PlantParams(solder_latent_j=latent_j, g_chip_comp_melt_w_k=0.0))
    lamps_on(plant, 20.0)
    run_until(plant, clock, lambda: plant.state.chip_c >= 230.0, 60.0)
    plant.set_lamp_power([0.0] * 4)
    run_until(plant, clock, lambda: plant.state.chip_c <= 222.0, 60.0, step=0.005)
    assert plant.state.melt_fraction == 1.0
    took = run_until(plant, clock, lambda: plant.state.chip_c <= 216.0, 60.0, step=0.005)
    assert plant.state.melt_fraction == 0.0
    return took


def test_solder_freezes_again_on_cooling_and_releases_its_heat() -> None:
    # Through the band the freezing solder gives back its 60 J: 25 J/K · 6 K = 150 J sensible.
    assert freezing_time(60.0) == pytest.approx(freezing_time(0.0) * 210.0 / 150.0, rel=0.1)


def test_eutectic_solder_melts_in_a_narrow_band() -> None:
    plant, clock = make()
    plant.set_solder(183.0, 183.0)
    lamps_on(plant, 30.0)
    run_until(plant, clock, lambda: plant.state.melt_fraction > 0.0, 60.0, step=0.005)
    assert 182.4 <= plant.state.chip_c <= 183.0
    run_until(plant, clock, lambda: plant.state.melt_fraction >= 1.0, 60.0, step=0.005)
    assert plant.state.chip_c == pytest.approx(183.0, abs=0.05)
    with pytest.raises(ValueError, match="above liquidus"):
        plant.set_solder(230.0, 220.0)


def test_film_pressure_and_molten_solder_raise_chip_component_conductance() -> None:
    plant, clock = make()
    p = plant.params
    assert plant.state.g_chip_component_w_k == pytest.approx(p.g_chip_comp_atm_w_k)
    pump_down(plant)
    run(plant, clock, 20.0, step=1.0)
    assert plant.state.g_chip_component_w_k == pytest.approx(p.g_chip_comp_vac_w_k, abs=0.01)


def test_chiller_holds_its_setpoint_and_has_finite_capacity() -> None:
    plant, clock = make()
    plant.chiller_set_setpoint(15.0)
    plant.chiller_start()
    run(plant, clock, 300.0, step=1.0)
    s = plant.state
    assert s.fluid_c == pytest.approx(15.0, abs=0.2)
    assert s.chuck_c == pytest.approx(15.0, abs=0.5)
    assert s.chiller_flow
    # Direct the lamps' full output into the stack: more heat than the chiller can take.
    plant.set_output(OUT_FILM_CLAMP, True)
    pump_down(plant)
    lamps_on(plant, 100.0)
    run(plant, clock, 80.0, step=0.1)
    s = plant.state
    assert s.chiller_heat_removed_w == pytest.approx(plant.params.chiller_cool_max_w)
    assert s.fluid_c > 17.0


def test_stopped_chiller_lets_the_fluid_drift_to_ambient() -> None:
    plant, clock = make()
    plant.chiller_start()
    run(plant, clock, 200.0, step=1.0)
    plant.chiller_stop()
    assert not plant.state.chiller_flow
    before = plant.state.fluid_c
    run(plant, clock, 600.0, step=10.0)
    assert before + 0.5 < plant.state.fluid_c < 23.0


def test_clamp_keeps_the_component_cooler() -> None:
    temps = []
    for clamp in (True, False):
        plant, clock = make()
        plant.set_output(OUT_FILM_CLAMP, clamp)
        plant.chiller_start()
        pump_down(plant)
        lamps_on(plant, 40.0)
        run(plant, clock, 10.0)
        temps.append(plant.state.component_c)
    assert temps[0] < temps[1] - 10.0


# ------------------------------------------------------------------ thermocouples


def test_thermocouple_junction_lags_with_its_time_constant() -> None:
    plant, clock = make()
    pump_down(plant)
    lamps_on(plant, 100.0)
    run(plant, clock, 1.0, step=0.01)
    s = plant.state
    c0 = s.chip_c
    run(plant, clock, 0.1, step=0.01)
    rate = (plant.state.chip_c - c0) / 0.1
    # In a ramp a first-order sensor trails by rate × tau.
    lag = plant.state.chip_c - plant.state.tc_junction_c["chip"]
    assert lag == pytest.approx(rate * plant.params.tc_tau_chip_s, rel=0.25)


# ------------------------------------------------------------------ lazy advance


def scripted(step: float) -> Plant:
    plant, clock = make()
    pump_down(plant)
    plant.chiller_start()
    lamps_on(plant, 60.0)
    run(plant, clock, 6.0, step=step)
    plant.set_lamp_power([0.0] * 4)
    run(plant, clock, 4.0, step=step)
    return plant


def test_result_does_not_depend_on_how_often_the_plant_is_polled() -> None:
    fine = scripted(0.0137).state
    coarse = scripted(2.0).state
    assert coarse.chip_c == pytest.approx(fine.chip_c, abs=0.05)
    assert coarse.component_c == pytest.approx(fine.component_c, abs=0.05)
    assert coarse.pressure_mbar == pytest.approx(fine.pressure_mbar, rel=1e-3)
    assert coarse.energy_in_j == pytest.approx(fine.energy_in_j, rel=1e-4)


def test_fault_fires_at_its_scheduled_time_even_if_the_plant_jumps_past_it() -> None:
    plant, clock = make()
    fired: list[float] = []
    plant.schedule_fault(PlantFault("chamber", "tear"), at_t=3.25, on_fire=fired.append)
    clock.t = 10.0
    plant.advance()
    assert fired == [3.25]
    assert plant.state.pressure_mbar == pytest.approx(1013.0, abs=0.01)


def test_cancelled_fault_does_not_fire() -> None:
    plant, clock = make()
    handle = plant.schedule_fault(PlantFault("dio", "estop"), at_t=1.0)
    assert plant.cancel_fault(handle)
    run(plant, clock, 2.0)
    assert not plant.state.estop_pressed


def test_plant_refuses_faults_it_cannot_apply() -> None:
    plant, _ = make()
    with pytest.raises(ValueError, match="unknown fault device"):
        plant.schedule_fault(PlantFault("tc.heater", "open"), 0.0)
    with pytest.raises(ValueError, match="not valid"):
        plant.schedule_fault(PlantFault("gauge", "tear"), 0.0)
    with pytest.raises(ValueError, match="needs a value"):
        plant.schedule_fault(PlantFault("chamber", "leak"), 0.0)


def test_io_watchdog_drops_outputs_when_enabled() -> None:
    plant, clock = make(PlantParams(dio_watchdog_s=0.5))
    plant.set_output(OUT_LAMP_CONTACTOR, True)
    plant.set_output(OUT_FILM_CLAMP, True)
    plant.dio_contact()
    run(plant, clock, 0.4)
    plant.dio_contact()
    run(plant, clock, 0.4)
    assert plant.state.outputs[OUT_FILM_CLAMP]
    run(plant, clock, 0.2)
    assert not any(plant.state.outputs.values())


# -------------------------------------------------------- Z stage, UV, dispenser


def test_z_move_follows_a_trapezoidal_profile() -> None:
    plant, clock = make()
    plant.z_home()
    v, a, d = 500.0, plant.params.z_accel_um_s2, 1000.0
    plant.z_move(d, v)
    peak = 0.0

    def track() -> None:
        nonlocal peak
        peak = max(peak, plant.state.z_velocity_um_s)

    duration = run_until(plant, clock, lambda: not plant.z_moving, 10.0, step=0.005)
    plant.z_move(0.0, v)
    run(plant, clock, 0.2, step=0.005, each=track)
    assert duration == pytest.approx(d / v + v / a, abs=0.02)
    assert plant.state.z_velocity_um_s < 0.0  # going back down
    assert peak <= v + 1e-9


def test_z_triangular_profile_when_the_move_is_short() -> None:
    plant, clock = make()
    plant.z_home()
    a = plant.params.z_accel_um_s2
    plant.z_move(100.0, 1000.0)
    duration = run_until(plant, clock, lambda: not plant.z_moving, 10.0, step=0.005)
    assert duration == pytest.approx(2.0 * math.sqrt(100.0 / a), abs=0.02)
    assert plant.z_um == 100.0


def test_z_stop_decelerates_without_overshoot_of_the_braking_distance() -> None:
    plant, clock = make()
    plant.z_home()
    plant.z_move(5000.0, 1000.0)
    run(plant, clock, 1.0, step=0.01)
    z0, v0 = plant.state.z_um, plant.state.z_velocity_um_s
    plant.z_stop()
    run_until(plant, clock, lambda: not plant.z_moving, 5.0, step=0.005)
    braking = v0 * v0 / (2.0 * plant.params.z_accel_um_s2)
    assert plant.z_um == pytest.approx(z0 + braking, abs=1.0)


def test_uv_dose_degrades_the_adhesive() -> None:
    plant, clock = make()
    plant.uv_set_irradiance(100.0)
    run(plant, clock, 2.0)
    assert plant.state.uv_dose_mj_cm2 == 0.0  # shutter closed
    plant.set_output(OUT_UV_ENABLE, True)  # the remote-interlock line
    plant.uv_shutter(True)
    run(plant, clock, 4.0)
    s = plant.state
    assert s.uv_dose_mj_cm2 == pytest.approx(400.0, rel=1e-6)
    assert s.adhesive_degradation == pytest.approx(1.0 - math.exp(-1.0), rel=1e-6)


def test_dispensed_volume_is_proportional_to_pressure_and_time() -> None:
    plant, clock = make()
    plant.dispenser_set_pressure(300.0)
    plant.dispense(2.0)
    run(plant, clock, 1.0)
    assert plant.state.dispensing
    run(plant, clock, 2.0)
    first = plant.state.dispensed_ul
    assert not plant.state.dispensing
    plant.dispenser_set_pressure(600.0)
    plant.dispense(1.0)
    run(plant, clock, 3.0)
    assert first == pytest.approx(300.0 * 2.0 * plant.params.dispense_ul_per_kpa_s, rel=1e-9)
    assert plant.state.dispensed_ul == pytest.approx(2.0 * first, rel=1e-9)


def test_cure_is_faster_when_the_component_is_hot() -> None:
    conversions = []
    for pct in (0.0, 25.0):
        plant, clock = make()
        plant.dispenser_set_pressure(100.0)
        plant.dispense(0.5)
        lamps_on(plant, pct)
        run(plant, clock, 60.0, step=0.5)
        conversions.append((plant.state.cure_conversion, plant.state.component_c))
    (cold, t_cold), (hot, t_hot) = conversions
    assert t_hot > t_cold + 50.0
    assert 0.0 < cold < 1e-3
    assert hot > 20.0 * cold
    assert hot < 1.0
