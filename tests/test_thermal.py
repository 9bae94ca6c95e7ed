"""Setpoint profile and lamp controller."""

from __future__ import annotations

import pytest

from daemon.recipe.model import Segment
from daemon.thermal import LampController, Profile


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


def test_controller_output_is_clamped_and_does_not_wind_up() -> None:
    c = LampController()
    hold = Profile(245.0, [Segment(ramp_c_per_s=1.0, to_c=245.0, hold_s=100.0)])
    for i in range(200):  # far below setpoint for 20 s: saturated high
        out, sp = c.update(i * 0.1, hold, i * 0.1, 25.0, 25.0)
        assert 0.0 <= out <= 100.0 and sp == 245.0
    assert out == 100.0
    # Once above setpoint the output must drop at once, not after unwinding 20 s of integral.
    assert c.update(20.1, hold, 20.1, 247.0, 90.0)[0] < 100.0
    low = Profile(100.0, [Segment(ramp_c_per_s=1.0, to_c=100.0, hold_s=100.0)])
    assert c.update(20.2, low, 20.2, 250.0, 90.0)[0] == 0.0


def test_error_is_taken_against_the_lagged_setpoint_on_a_ramp() -> None:
    # On a steady ramp a chip lagging by exactly the sensing lag is on track: no PI action.
    c = LampController()
    ramp = Profile(100.0, [Segment(ramp_c_per_s=2.0, to_c=200.0)])
    lagged = 100.0 + 2.0 * (10.0 - c.model.sensing_lag_s)
    out, sp = c.update(10.0, ramp, 10.0, lagged, 80.0)
    assert sp == pytest.approx(120.0)
    assert out == pytest.approx(c.feedforward_pct(120.0, 2.0, 80.0))
