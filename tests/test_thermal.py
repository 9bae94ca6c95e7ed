"""Setpoint profile and the chip controller, one control period at a time (no plant)."""

from __future__ import annotations

import itertools

import pytest

from daemon.recipe.model import Segment
from daemon.steps.vacuum_film import SOAK_BAND_C, TRAIL_BAND_C, _advance
from daemon.thermal.loop import ChipController, Profile, ThermalModel, melt_fraction

DT = 0.05  # the control period

# DESIGN.md's nameplate numbers (4 kW, 35 % to the chips, 25 J/K, 3 W/K under vacuum, 60 J
# latent heat, 0.25 s filaments, 0.3 s thermocouple). The daemon never runs on it (ADR 0062); the
# controller's unit tests do.
NAMEPLATE_MODEL = ThermalModel(
    gain_c_s_per_pct=4000.0 * 0.35 / 100.0 / 25.0,
    loss_per_s=3.0 / 25.0,
    molten_loss_per_s=2.0 / 25.0,
    latent_heat_k=60.0 / 25.0,
    filament_tau_s=0.25,
    tc_tau_s=0.3,
    radiation_c_s_per_1e10_k4=0.9 * 5.67e-8 * 1e-3 / 25.0 * 1e10,
)


def test_profile_ramps_at_the_asked_rate_then_holds() -> None:
    p = Profile(25.0, [Segment(ramp_c_per_s=2.0, to_c=125.0, hold_s=10.0)])
    assert p.duration_s == pytest.approx(60.0)
    assert p.at(25.0) == pytest.approx((75.0, 2.0))
    assert p.at(55.0) == pytest.approx((125.0, 0.0))
    assert p.at(1e6) == (125.0, 0.0)


def test_profile_ramps_down_too() -> None:
    p = Profile(245.0, [Segment(ramp_c_per_s=3.0, to_c=150.0)])
    sp, slope = p.at(10.0)
    assert sp == pytest.approx(215.0) and slope == pytest.approx(-3.0)


def test_profile_looks_ahead_into_the_next_step_without_lengthening() -> None:
    then = Segment(ramp_c_per_s=3.0, to_c=150.0)
    p = Profile(25.0, [Segment(ramp_c_per_s=2.0, to_c=245.0, hold_s=15.0)], then=then)
    assert p.duration_s == pytest.approx(110.0 + 15.0)
    assert p.at(p.duration_s + 1.0) == pytest.approx((242.0, -3.0))


def test_time_above_liquidus_of_the_profile_counts_ramps_hold_and_cooling() -> None:
    p = Profile(25.0, [Segment(ramp_c_per_s=2.0, to_c=245.0, hold_s=15.0)])
    assert p.time_above(220.0, then_rate_c_s=3.0) == pytest.approx(12.5 + 15.0 + 25.0 / 3.0)


def _hold(level: float) -> Profile:
    return Profile(level, [Segment(ramp_c_per_s=1.0, to_c=level, hold_s=1000.0)])


def test_output_leaves_the_rail_soon_after_the_error_changes_sign() -> None:
    c = ChipController(NAMEPLATE_MODEL)
    hold = _hold(245.0)
    t, chip, out = 0.0, 25.0, 0.0
    for _ in range(200):  # 10 s far below the setpoint: saturated high all along
        out = c.update(t, hold, t, measured_c=chip, sink_c=25.0, cap_pct=100.0)
        t += DT
    assert out == 100.0
    # The chip then heats at 20 °C/s (full power) and arrives 0.5 °C over the setpoint.
    crossed: float | None = None
    outs: list[tuple[float, float]] = []
    while t < 30.0:
        chip = min(245.5, chip + 20.0 * DT)
        if crossed is None and chip > 245.0:
            crossed = t
        outs.append((t, c.update(t, hold, t, measured_c=chip, sink_c=90.0, cap_pct=100.0)))
        t += DT
    assert crossed is not None
    # Off the rail within half a second of the error changing sign, not after unwinding
    # 20 s of integral, and settled between the rails (not stuck at 0 either) 3 s later.
    assert all(o < 100.0 for tt, o in outs if tt >= crossed + 0.5)
    ff = c.feedforward_pct(245.0, 0.0, 90.0)
    late = [o for tt, o in outs if tt >= crossed + 3.0]
    assert all(0.0 < o < ff + 5.0 for o in late)


def test_output_respects_the_cap_and_the_slew_limit() -> None:
    c = ChipController(NAMEPLATE_MODEL, slew_pct_per_s=200.0)
    hold = _hold(200.0)
    prev = c.update(0.0, hold, 0.0, measured_c=25.0, sink_c=25.0, cap_pct=100.0)
    for i in range(1, 40):
        cap = 30.0 if i > 20 else 100.0
        out = c.update(i * DT, hold, i * DT, measured_c=25.0, sink_c=25.0, cap_pct=cap)
        assert 0.0 <= out <= cap + 1e-9
        # Up at the slew rate; down to a lower cap at once (the cap wins).
        assert out - prev <= 200.0 * DT + 1e-9
        prev = out


def test_feedforward_plans_the_latent_heat_across_the_melting_band() -> None:
    c = ChipController(NAMEPLATE_MODEL, melt=(217.0, 220.0))
    below = c.feedforward_pct(216.0, 2.0, 90.0)
    inside = c.feedforward_pct(218.0, 2.0, 90.0)
    m = NAMEPLATE_MODEL
    latent = 2.0 * m.latent_heat_k / 3.0 / m.gain_c_s_per_pct
    assert inside - below == pytest.approx(
        latent + (m.loss_per_s * 2.0 + m.molten_loss_per_s * (1 / 3) * 128.0) / m.gain_c_s_per_pct,
        rel=0.05,
    )
    # Freezing gives the heat back: the lamps need less on the way down.
    assert c.feedforward_pct(218.0, -2.0, 90.0) < c.feedforward_pct(218.0, 0.0, 90.0)


def test_a_eutectic_melts_over_a_narrow_band_below_its_liquidus() -> None:
    assert melt_fraction(182.4, (183.0, 183.0)) == (0.0, 0.0)
    assert melt_fraction(182.75, (183.0, 183.0))[0] == pytest.approx(0.5)
    assert melt_fraction(183.1, (183.0, 183.0)) == (1.0, 0.0)


def test_soak_timer_runs_only_while_the_chip_is_inside_the_band() -> None:
    p = Profile(150.0, [Segment(ramp_c_per_s=1.0, to_c=150.0, hold_s=30.0)])
    piece = p.piece_at(5.0)
    assert piece is not None and piece.kind == "hold"
    assert _advance(piece, 5.0, DT, 150.0 + SOAK_BAND_C * 0.5, 150.0) == pytest.approx(5.0 + DT)
    assert _advance(piece, 5.0, DT, 150.0 - SOAK_BAND_C * 2.0, 150.0) == 5.0
    assert _advance(piece, 5.0, DT, 150.0 + SOAK_BAND_C * 2.0, 150.0) == 5.0


def test_a_ramp_ends_on_temperature_not_on_the_clock() -> None:
    p = Profile(100.0, [Segment(ramp_c_per_s=2.0, to_c=150.0, hold_s=10.0)])
    ramp = p.piece_at(24.99)
    assert ramp is not None and ramp.kind == "ramp"
    # The clock reaches the ramp's end with the chip still reading 3 °C short: it waits.
    t = _advance(ramp, 24.99, DT, 147.0 - 0.6, 150.0 - 0.6 + TRAIL_BAND_C * 0.5)
    assert t < ramp.t1
    # A chip that trails on the ramp holds the setpoint where it is.
    assert _advance(ramp, 10.0, DT, 110.0, 120.0) == 10.0
    # On track, the clock runs.
    assert _advance(ramp, 10.0, DT, 119.5, 119.4) == pytest.approx(10.0 + DT)


def _cooling_hold_run(clock_runs: bool, seconds: float) -> list[tuple[float, float, float]]:
    """A chip 1 °C above a cooling ramp's reference, which the lamps keep from moving (a
    surplus the loop does not know of); (t, output %, integrator %) each period."""
    c = ChipController(NAMEPLATE_MODEL)
    p = Profile(220.0, [Segment(ramp_c_per_s=3.0, to_c=150.0)], catch_up_c_s=0.0)
    rows = []
    t = 0.0
    while t < seconds:
        t_profile = 5.0 + (t if clock_runs else 0.0)
        chip = p.at(t_profile)[0] + 1.0
        out = c.update(t, p, t_profile, measured_c=chip, sink_c=25.0, cap_pct=100.0)
        rows.append((t, out, c.integral_pct))
        t += DT
    return rows


def test_a_chip_trailing_a_running_cooling_ramp_is_not_pulled_down() -> None:
    # The clock runs: the chip follows, late by its lag; catching up would cool it faster
    # than planned, so neither the P term nor the integrator act on the trailing error.
    rows = _cooling_hold_run(clock_runs=True, seconds=15.0)
    start = next(i for t, _, i in rows if t >= 1.0)  # past the lamps' first slew
    assert all(i == start for t, _, i in rows if t >= 1.0)


def test_a_chip_the_lamps_stall_above_a_held_cooling_setpoint_is_brought_down() -> None:
    rows = _cooling_hold_run(clock_runs=False, seconds=12.0)
    # A clock held for a moment (noise, the freezing plateau) is a trailing chip: no pull.
    settled = [out for t, out, _ in rows if 1.0 <= t <= 1.9]
    assert max(settled) - min(settled) < 0.2
    start = next(i for t, _, i in rows if t >= 1.0)  # past the lamps' first slew
    assert all(i == start for t, _, i in rows if 1.0 <= t <= 1.9)
    # Held for seconds, the chip is stalled: the loop closes on the still setpoint and the
    # integrator sheds the surplus, steadily.
    _, out_end, i_end = rows[-1]
    assert i_end < start - 1.0
    assert out_end < settled[-1] - 1.0
    # At most the ramp's own rate of cooling from the P term (the integrator aside).
    p_share = settled[-1] - out_end + (i_end - start)
    assert 0.0 < p_share <= 3.0 / NAMEPLATE_MODEL.gain_c_s_per_pct + 1e-6
    assert all(b[2] <= a[2] for a, b in itertools.pairwise(rows) if a[0] >= 1.0)


def _integrator_across_a_eutectic(slope_c_s: float) -> list[float]:
    """The integrator each period of a chip that reads exactly what it should on a ramp
    across Sn63Pb37's melting point: the loop has no error to correct anywhere."""
    c = ChipController(NAMEPLATE_MODEL, (183.0, 183.0))
    start, end = (200.0, 160.0) if slope_c_s < 0 else (160.0, 200.0)
    p = Profile(start, [Segment(ramp_c_per_s=abs(slope_c_s), to_c=end)], catch_up_c_s=0.0)
    integral: list[float] = []
    t = 0.0
    while t < p.duration_s:
        reads = c.expected_c if c.expected_c is not None else start
        c.update(t, p, t, measured_c=reads, sink_c=50.0, cap_pct=100.0)
        integral.append(c.integral_pct)
        t += DT
    return integral


@pytest.mark.parametrize("slope_c_s", [-3.4, -3.8, 3.0])
def test_a_feedforward_saturating_on_a_eutectic_leaves_no_integrator_behind(
    slope_c_s: float,
) -> None:
    # Crossing the 0.5 K band the feedforward asks for far more (melting) or less than 0 %
    # (freezing: the lamps cannot pull the latent heat out) for a few periods. That is the
    # model's plan, not an error the integrator should make up: a surplus wound in there was
    # carried down the whole cooling ramp (the trailing error is clamped), slowing the chip
    # by ~0.3-0.9 °C/s at random with the band's phase against the period (ADR 0122).
    integral = _integrator_across_a_eutectic(slope_c_s)
    assert max(abs(i) for i in integral) < 0.05
