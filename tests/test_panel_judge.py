"""Every site of a panel judged: measured sites on their thermocouples, the others on
estimates that say so; the run fails naming the sites; a single chip's document unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.panel import PANEL_RECIPE
from daemon.config import Limits
from daemon.judge.panel import (
    ESTIMATE_METHOD,
    PANEL_CHECK,
    site_channels,
    surface_weights,
    with_estimates,
)
from daemon.recipe.load import load_recipe_file
from daemon.recipe.model import Panel, VacuumFilmBondRecipe
from daemon.run.virtual import REPO, SimRun, run_recipe
from daemon.store.trace import Sample

CORNERS = (0, 2, 6, 8)
SIDES = (1, 3, 5, 7)


def _sample(temps: dict[str, float | None]) -> Sample:
    return Sample(0.0, "reflow", 245.0, temps, 2.0, None, 50.0)


def test_a_centre_hot_field_is_estimated_exactly_from_the_centre_and_the_corners() -> None:
    panel = Panel(rows=3, cols=3, instrumented=[0, 2, 4, 6, 8])

    def field(site: int) -> float:  # a quadratic field with a tilt, as lamps and rim make
        r, c = divmod(site, 3)
        x, y = c - 1.0, r - 1.0
        return 245.0 - 4.0 * (x * x + y * y) + 0.7 * x - 0.3 * y + 0.2 * x * y

    channels = site_channels(panel)
    temps: dict[str, float | None] = {channels[i]: field(i) for i in panel.instrumented_sites}
    [est] = with_estimates(panel, [_sample(temps)])
    for i in SIDES:
        assert est.temps_c[f"site_{i}_est"] == pytest.approx(field(i), abs=1e-9)
    # The measured channels are left as they were.
    assert all(est.temps_c[ch] == v for ch, v in temps.items())


def test_a_lost_reading_falls_back_to_a_simpler_surface_and_none_to_no_estimate() -> None:
    panel = Panel(rows=3, cols=3, instrumented=[0, 2, 4, 6, 8])
    # Site 8's thermocouple gives nothing: a surface through the four that read.
    temps = {"chip": 245.0, "site_0": 236.0, "site_2": 236.0, "site_6": 236.0, "site_8": None}
    [est] = with_estimates(panel, [_sample(temps)])
    assert est.temps_c["site_1_est"] is not None
    assert 236.0 <= est.temps_c["site_1_est"] <= 245.0
    nothing = dict.fromkeys(temps)
    [blind] = with_estimates(panel, [_sample(nothing)])
    assert blind.temps_c["site_1_est"] is None
    # One thermocouple only: every other site is estimated as that one.
    weights = surface_weights(Panel(rows=2, cols=2), (0,))
    assert weights == {1: [1.0], 2: [1.0], 3: [1.0]}


def test_instrumented_sites_must_include_the_control_site() -> None:
    with pytest.raises(ValueError, match="centre site 4"):
        Panel(rows=3, cols=3, instrumented=[0, 2])
    with pytest.raises(ValueError, match="not on the panel"):
        Panel(rows=3, cols=3, instrumented=[4, 9])


@pytest.fixture(scope="module")
def panel_run() -> tuple[dict[str, Any], SimRun, list[float]]:
    import asyncio  # noqa: PLC0415 - a module fixture runs outside the test's loop
    import tempfile  # noqa: PLC0415

    peaks: list[float] = []

    def on_event(sim: SimRun, name: str, payload: dict[str, Any]) -> None:
        if name == "RunStarted":

            def watch(plant: Any) -> None:
                sites = plant.sites()
                if not peaks:
                    peaks.extend(s.chip_c for s in sites)
                for i, s in enumerate(sites):
                    peaks[i] = max(peaks[i], s.chip_c)

            sim.plant.add_observer(watch)

    async def go() -> tuple[dict[str, Any], SimRun]:
        with tempfile.TemporaryDirectory() as tmp:
            # Equal power on every zone (today's control): the corners miss their window.
            doc, sim = await run_recipe(
                PANEL_RECIPE, Path(tmp), on_event=on_event, panel_gains="none"
            )
            sim.store.close()
        return doc, sim

    doc, sim = asyncio.run(go())
    return doc, sim, peaks


def test_every_site_is_in_the_document_measured_or_marked_estimated(
    panel_run: tuple[dict[str, Any], SimRun, list[float]],
) -> None:
    doc, _, _ = panel_run
    sites = {s["site"]: s for s in doc["sites"]}
    assert sorted(sites) == list(range(9))
    for i, s in sites.items():
        assert (s["row"], s["col"]) == divmod(i, 3)
        assert set(s) >= {"site", "row", "col", "instrumented", "peak_c", "tal_s", "ok"}
        assert isinstance(s["failed_checks"], list)
        assert s["ok"] == (not s["failed_checks"])
        if i in (*CORNERS, 4):
            assert s["instrumented"] and "estimate" not in s
        else:
            assert not s["instrumented"] and s["estimate"] == ESTIMATE_METHOD
            assert s["channel"] == f"site_{i}_est"
    assert sites[4]["channel"] == "chip" and sites[0]["channel"] == "site_0"


def test_the_run_fails_naming_the_sites_that_missed_their_window(
    panel_run: tuple[dict[str, Any], SimRun, list[float]],
) -> None:
    doc, _, _ = panel_run
    sites = {s["site"]: s for s in doc["sites"]}
    assert doc["result"] == "failed"
    assert PANEL_CHECK in doc["reason"]
    [check] = [c for c in doc["conformance"] if c["check"] == PANEL_CHECK]
    assert not check["ok"]
    # The centre is the control site and holds; the corners peak under the 238 °C window.
    assert sites[4]["ok"]
    for i in CORNERS:
        assert "peak_in_window" in sites[i]["failed_checks"]
        assert f"site {i} (row {i // 3}, col {i % 3}, measured): peak_in_window" in check["detail"]
    # The centre's checks are today's: the chip channel still passes the ones it passed.
    assert all(c["ok"] for c in doc["conformance"] if c["check"] == "peak_in_window")
    assert 5.0 < doc["metrics"]["uniformity_c"] < 15.0


def test_estimates_of_the_side_sites_track_the_true_chips(
    panel_run: tuple[dict[str, Any], SimRun, list[float]],
) -> None:
    doc, _, peaks = panel_run
    sites = {s["site"]: s for s in doc["sites"]}
    for i in SIDES:
        assert sites[i]["peak_c"] == pytest.approx(peaks[i], abs=1.0)
    for i in (*CORNERS, 4):  # measured: the thermocouple's lag and noise only
        assert sites[i]["peak_c"] == pytest.approx(peaks[i], abs=0.5)


async def test_a_single_chip_document_has_no_sites(tmp_path: Path) -> None:
    loaded = load_recipe_file(REPO / "recipes" / "sac305-polyimide.toml", Limits())
    assert isinstance(loaded.recipe, VacuumFilmBondRecipe) and loaded.recipe.panel is None
    doc, sim = await run_recipe(loaded, tmp_path)
    sim.store.close()
    assert "sites" not in doc and "uniformity_c" not in doc["metrics"]
    assert all(c["check"] != PANEL_CHECK for c in doc["conformance"])
