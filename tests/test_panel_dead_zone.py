"""A dead lamp zone on a panel (issue 17 item 5, ADR 0165): the interlocks find it under its
own command, and the reflow stops before it is lost when the gain matrix says the other
zones at their limits cannot bring every instrumented site into the peak window."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.run.virtual import REPO, run_recipe
from daemon.thermal.panel_reach import examine, unreachable_sites
from drivers.sim.faults import parse_scenario

PANEL_RECIPE = REPO / "recipes" / "panel-3x3-sac305.toml"
CHANNELS = ["chip", "site_0"]
# Zone 0 lights the centre, zone 1 the corner, zone 2 both a little.
GAINS = [[3.0, 0.1, 0.5], [0.5, 2.0, 0.5]]
REACH = {"base_c": 20.0, "peak_c": 245.0, "window_min_c": 238.0}


def test_all_zones_alive_reach_every_site() -> None:
    assert unreachable_sites(GAINS, CHANNELS, set(), **REACH) == []


def test_without_the_centres_zone_the_control_site_cannot_reach_its_peak() -> None:
    # Zones 1 and 2 at full power give the centre 60 °C over the chuck, not 225.
    assert unreachable_sites(GAINS, CHANNELS, {0}, **REACH) == ["chip"]


def test_without_the_corners_zone_the_corner_is_named() -> None:
    # The centre still gets there, but the corner sees a sixth of it at best.
    assert unreachable_sites(GAINS, CHANNELS, {1}, **REACH) == ["site_0"]


def _dead(zone: int) -> str:
    return (
        f'[[fault]]\nat_step = "reflow"\nafter_s = 1.0\ndevice = "lamps.z{zone}"\nkind = "fail"\n'
    )


async def test_a_dead_inner_zone_stops_the_reflow_at_once_naming_the_zone(
    tmp_path: Path,
) -> None:
    scenario = parse_scenario(_dead(1), "inner-zone-dead.toml")
    doc, sim = await run_recipe(PANEL_RECIPE, tmp_path, scenario=scenario)
    sim.store.close()
    assert doc["result"] == "aborted"
    alarms = {a["code"]: a for a in doc["alarms"]}
    assert "lamp_zone_dead" in alarms
    stop = alarms["step_failed"]
    assert "lamp zone 1 dead" in stop["message"] and "control site (chip)" in stop["message"]
    reflow = next(s for s in doc["steps"] if s["name"] == "reflow")
    # Seconds after the fault, not at the step's 300 s timeout; no joint was ever molten.
    assert reflow["result"] != "completed" and float(reflow["duration_s"]) < 20.0
    assert all(s["peak_c"] < 217.0 for s in doc["sites"])
    state = sim.plant.state
    assert max(state.lamp_output_pct) == 0.0 and not state.contactor_energized


@pytest.mark.parametrize("zone", [3, 4])
async def test_a_dead_side_zone_stops_the_reflow_before_it_is_lost(
    tmp_path: Path, zone: int
) -> None:
    # The site model (every site, ADR 0166) says the side sites under the dead zone cannot
    # reach the window while the centre is at its peak: stopped at once, no joint molten,
    # instead of running on to the judged failure of ADR 0165 (corners at 227 °C).
    scenario = parse_scenario(_dead(zone), "side-zone-dead.toml")
    doc, sim = await run_recipe(PANEL_RECIPE, tmp_path, scenario=scenario)
    sim.store.close()
    assert doc["result"] == "aborted"
    stop = {a["code"]: a for a in doc["alarms"]}["step_failed"]
    assert f"lamp zone {zone} dead" in stop["message"] and "cannot reach" in stop["message"]
    assert all(s["peak_c"] < 217.0 for s in doc["sites"])
    state = sim.plant.state
    assert max(state.lamp_output_pct) == 0.0 and not state.contactor_energized


async def test_a_dead_corner_zone_stops_the_reflow_naming_the_sites_that_would_cool_too_fast(
    tmp_path: Path,
) -> None:
    # Every site can still reach the window with the corner zone dark, but only with the
    # side zones turned up: the twin's most even powers leave the side sites ~5.7 °C over the
    # centre (the plant's truth: 248.3 against 242.5 at the corners), and a run let on froze
    # them out of step with the control site, truly cooling at 4.4 °C/s against the 3 °C/s
    # limit (ADR 0168). Stopped when the zone is found dead, no joint molten.
    scenario = parse_scenario(_dead(2), "corner-zone-dead.toml")
    doc, sim = await run_recipe(PANEL_RECIPE, tmp_path, scenario=scenario)
    sim.store.close()
    assert doc["result"] == "aborted"
    stop = {a["code"]: a for a in doc["alarms"]}["step_failed"]
    assert "lamp zone 2 dead" in stop["message"] and "freeze out of step" in stop["message"]
    for side in ("site_1", "site_3", "site_5", "site_7"):
        assert side in stop["message"]
    for corner in ("site_0", "site_2", "site_6", "site_8"):
        assert corner not in stop["message"]
    assert all(s["peak_c"] < 217.0 for s in doc["sites"])
    state = sim.plant.state
    assert max(state.lamp_output_pct) == 0.0 and not state.contactor_energized


# Zones 0 and 1 light the side site a tenth or more over the centre; only zone 2 lights the
# centre more than the side.
SPREAD_GAINS = [[3.0, 1.0, 1.0], [3.3, 1.2, 0.2]]
SPREAD_CHANNELS = ["chip", "site_1"]


def test_a_site_the_others_overheat_is_named_above_the_window() -> None:
    # Zone 2 dark: with the centre at 245 °C the side is at least 1.1 × its 225 °C rise over
    # the chuck, 267.5 °C.
    reach = examine(
        SPREAD_GAINS, SPREAD_CHANNELS, {2}, **REACH, window_max_c=252.0, max_spread_c=3.0
    )
    assert reach.above == ["site_1"] and not reach.control_lost


def test_sites_in_the_window_but_far_apart_are_named_apart() -> None:
    # A window wide enough for both: the side still runs far over the centre.
    reach = examine(
        SPREAD_GAINS,
        SPREAD_CHANNELS,
        {2},
        base_c=20.0,
        peak_c=245.0,
        window_min_c=200.0,
        window_max_c=300.0,
        max_spread_c=3.0,
    )
    assert not reach.below and not reach.above
    assert "site_1" in reach.apart and reach.spread_c > 3.0 and not reach.ok


def test_every_zone_alive_the_twin_finds_the_sites_together() -> None:
    reach = examine(
        SPREAD_GAINS, SPREAD_CHANNELS, set(), **REACH, window_max_c=252.0, max_spread_c=3.0
    )
    assert reach.ok and reach.spread_c <= 3.0
