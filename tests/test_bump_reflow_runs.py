"""Bump reflow on the simulated machine: the paste strips coalesce in N2 at atmosphere."""

from __future__ import annotations

from pathlib import Path

from drivers.sim.faults import parse_scenario
from tests.simrun import REPO, run_recipe

BUMP = REPO / "recipes/bump-sac305.toml"


async def test_bump_reflow_coalesces_the_paste_in_nitrogen(tmp_path: Path) -> None:
    doc, sim = await run_recipe(BUMP, tmp_path)
    assert doc["result"] == "completed", doc["reason"]
    assert all(c["ok"] for c in doc["conformance"])
    names = {c["check"] for c in doc["conformance"]}
    assert {"peak_in_window", "time_above_liquidus", "o2_partial_pressure"} <= names
    assert sim.plant.state.coalescence > 0.99
    samples = sim.store.samples(doc["run_id"])
    reflow = [s for s in samples if s.step == "reflow" and s.pressure_mbar is not None]
    # Melted at about atmospheric pressure, under nitrogen: no film pumped onto the paste.
    assert min(s.pressure_mbar or 0.0 for s in reflow) > 800.0
    assert max(s.o2_ppm or 0.0 for s in reflow) < 50.0


async def test_air_coming_in_during_the_bump_reflow_trips_on_oxygen(tmp_path: Path) -> None:
    fault = '[[fault]]\nat_step = "reflow"\nafter_s = 20.0\ndevice = "film"\nkind = "tear"\n'
    doc, sim = await run_recipe(BUMP, tmp_path, scenario=parse_scenario(fault))
    assert doc["result"] == "aborted"
    assert "o2_high" in doc["reason"], doc["reason"]
    # Stopped before the oxidised strips could be taken to liquidus.
    assert sim.plant.state.coalescence < 0.5
