"""The panel recipe under the zone loop in the false-trip and fault runs: clean runs and
realistic disturbances trip nothing; a dead zone is warned about and the run still ends
judged and safe (tests/test_false_trips.py and test_fault_campaign.py for the single chip)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bench.panel import PANEL_RECIPE, zone_loop_factory
from daemon.config import Limits
from daemon.recipe.load import load_recipe_file
from daemon.thermal.loop import ControllerFactory
from drivers.sim.faults import parse_scenario
from drivers.sim.plant import PlantParams
from tests.simrun import run_recipe

BASE = PlantParams()
DISTURBANCES = {
    "tc_noise_x3": replace(BASE, tc_noise_c=3 * BASE.tc_noise_c),
    "slow_chiller": replace(
        BASE, chiller_tau_s=2 * BASE.chiller_tau_s, chiller_cool_max_w=BASE.chiller_cool_max_w / 2
    ),
}


@pytest.fixture(scope="module")
def factory() -> ControllerFactory:
    panel = load_recipe_file(PANEL_RECIPE, Limits()).recipe.panel  # type: ignore[union-attr]
    assert panel is not None
    return zone_loop_factory(panel)


@pytest.mark.parametrize("seed", [1, 2])
async def test_clean_panel_runs_do_not_trip(
    seed: int, factory: ControllerFactory, tmp_path: Path
) -> None:
    doc, sim = await run_recipe(PANEL_RECIPE, tmp_path, seed=seed, controller_factory=factory)
    raised = [p for _, e, p in sim.events if e == "AlarmRaised"]
    assert doc["result"] == "completed", doc["reason"]
    assert raised == [] and sim.interlocks.trip is None


@pytest.mark.parametrize("name", sorted(DISTURBANCES))
async def test_realistic_disturbances_do_not_trip_a_panel(
    name: str, factory: ControllerFactory, tmp_path: Path
) -> None:
    doc, sim = await run_recipe(
        PANEL_RECIPE, tmp_path, params=DISTURBANCES[name], seed=7, controller_factory=factory
    )
    assert sim.interlocks.trip is None, sim.interlocks.trip
    assert [p for _, e, p in sim.events if e == "AlarmRaised"] == []
    assert doc["result"] in ("completed", "failed"), doc["reason"]


async def test_a_dead_zone_in_reflow_is_warned_about_and_the_run_ends_judged_and_safe(
    factory: ControllerFactory, tmp_path: Path
) -> None:
    scenario = parse_scenario(
        '[[fault]]\nat_step = "reflow"\nafter_s = 1.0\ndevice = "lamps.z2"\nkind = "fail"\n',
        "dead-zone.toml",
    )
    doc, sim = await run_recipe(
        PANEL_RECIPE, tmp_path, scenario=scenario, controller_factory=factory
    )
    codes = {a["code"] for a in doc["alarms"]}
    assert "lamp_zone_dead" in codes
    assert doc["result"] in ("completed", "failed")
    assert len(doc["sites"]) == 9  # every site judged, whatever the zone did to it
    s = sim.plant.state
    assert max(s.lamp_output_pct) == 0.0 and not s.contactor_energized
