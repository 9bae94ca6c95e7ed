"""No false trips: clean runs with different noise seeds, and runs with realistic disturbances.

A trip scraps a panel, so a clean run must never trip and never raise an interlock alarm.
The issue's figure is 200 seeds per shipped recipe (about 2 s of CPU per run: ~15 min for
both); the default suite runs SEEDS_DEFAULT seeds, ``BONDERD_FALSE_TRIP_SEEDS=200`` the lot.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from drivers.sim.plant import PlantParams
from tests.simrun import RECIPES, run_recipe

SEEDS_DEFAULT = 2
SEEDS = int(os.environ.get("BONDERD_FALSE_TRIP_SEEDS", SEEDS_DEFAULT))
BASE = PlantParams()

DISTURBANCES = {
    # Three times the thermocouple noise of the simulated (and typical real) TC module.
    "tc_noise_x3": replace(BASE, tc_noise_c=3 * BASE.tc_noise_c),
    # A chiller with half its capacity and twice its lag (an ageing unit, a long hose).
    "slow_chiller": replace(
        BASE, chiller_tau_s=2 * BASE.chiller_tau_s, chiller_cool_max_w=BASE.chiller_cool_max_w / 2
    ),
    # Lamps delivering 85 % of their rating (ageing filaments, low mains).
    "lamps_85pct": replace(BASE, zone_max_w=0.85 * BASE.zone_max_w),
}


def _assert_no_interlock(doc: dict[str, object], alarms: list[dict[str, object]]) -> None:
    assert doc["result"] == "completed", doc["reason"]
    assert alarms == [], alarms


@pytest.mark.parametrize("seed", range(1, SEEDS + 1))
@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
async def test_clean_runs_do_not_trip(recipe: Path, seed: int, tmp_path: Path) -> None:
    doc, sim = await run_recipe(recipe, tmp_path, seed=seed)
    raised = [p for _, e, p in sim.events if e == "AlarmRaised"]
    _assert_no_interlock(doc, raised)
    assert sim.interlocks.trip is None and sim.interlocks.cycles > 1000


# Every lamp-heated recipe: weak lamps once stalled the cool of the two SAC305 recipes
# (ADR 0110) while SnPb, the only one disturbed then, was fine.
LAMP_RECIPES = [r for r in RECIPES if not r.stem.startswith("lead-lift")]


@pytest.mark.parametrize("name", sorted(DISTURBANCES))
@pytest.mark.parametrize("recipe", LAMP_RECIPES, ids=lambda p: p.stem)
async def test_realistic_disturbances_do_not_trip(recipe: Path, name: str, tmp_path: Path) -> None:
    doc, sim = await run_recipe(recipe, tmp_path, params=DISTURBANCES[name], seed=7)
    raised = [p for _, e, p in sim.events if e == "AlarmRaised"]
    assert sim.interlocks.trip is None, sim.interlocks.trip
    assert raised == []
    # The process may be out of its window under a disturbance (that is the conformance
    # checks' job to say), but it must not be stopped by an interlock.
    assert doc["result"] in ("completed", "failed"), doc["reason"]
