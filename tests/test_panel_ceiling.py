"""A measured site over the peak window's top pulls its zones down, and the reflow stops
naming it instead of letting it ride on to the chip limit (issue 17, ADR 0169)."""

from __future__ import annotations

from pathlib import Path

from daemon.run.virtual import REPO, run_recipe
from drivers.sim.faults import parse_scenario

PANEL_RECIPE = REPO / "recipes" / "panel-3x3-sac305.toml"


async def test_an_uneven_film_on_a_measured_corner_stops_naming_it_under_the_chip_limit(
    tmp_path: Path,
) -> None:
    text = (
        '[[fault]]\nat_step = "reflow"\nafter_s = 1.0\ndevice = "film.site_0"\n'
        'kind = "uneven"\nvalue = 0.5\n'
    )
    doc, sim = await run_recipe(PANEL_RECIPE, tmp_path, scenario=parse_scenario(text))
    sim.store.close()
    assert doc["result"] == "aborted"
    # Once rode to the interlock (chip_overtemp, 272.1 °C); now the step stops itself.
    assert "chip_overtemp" not in {a["code"] for a in doc["alarms"]}
    assert "site_0" in doc["reason"] and "peak window's top (252 °C)" in doc["reason"]
    site0 = next(s for s in doc["sites"] if s["site"] == 0)
    assert 252.0 < site0["peak_c"] < 265.0 and not site0["ok"]
    state = sim.plant.state
    assert max(state.lamp_output_pct) == 0.0 and not state.contactor_energized
