"""The site model of a panel (ADR 0166): identified on the commissioning panel, its observer
estimates the sites without a thermocouple, the zone loop evens out all of them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from daemon.config import PanelGainsSection
from daemon.run.virtual import REPO, run_recipe
from daemon.thermal.panel_loop import feedforward_weights
from daemon.thermal.panel_model import SiteModel, SiteObserver, step_time_constant
from drivers.sim.plant import Plant

PANEL_RECIPE = REPO / "recipes" / "panel-3x3-sac305.toml"
# Three sites in a row under two zones: site 0 measured (the control site), 1 not, 2 measured.
MODEL = SiteModel(
    channels=("chip", "site_1", "site_2"),
    gains=((2.0, 0.5), (1.0, 1.0), (0.5, 2.0)),
    tau_s=(4.0, 6.0, 8.0),
    positions=((0, 0), (0, 1), (0, 2)),
)


def test_the_time_constant_of_a_first_order_step_is_found() -> None:
    times = [0.1 * k for k in range(600)]
    rise = [10.0 * (1.0 - math.exp(-t / 7.0)) for t in times]
    assert step_time_constant(times, rise, 10.0) == pytest.approx(7.0, rel=0.01)


def test_the_observer_follows_a_plant_that_is_its_model() -> None:
    # The plant is the model's first-order lags; the unmeasured site's estimate is exact.
    obs = SiteObserver(MODEL, ["chip", "site_2"])
    x = [0.0, 0.0, 0.0]
    u = [40.0, 10.0]
    # Lamps off and every site on the chuck when the loop starts, then a step.
    est = obs.update(0.0, [0.0, 0.0], 20.0, {"chip": 20.0, "site_2": 20.0}.get)
    for k in range(1, 600):
        t = 0.05 * k
        for i in range(3):
            ss = sum(g * p for g, p in zip(MODEL.gains[i], u, strict=True))
            x[i] += (ss - x[i]) * (1.0 - math.exp(-0.05 / MODEL.tau_s[i]))
        temps = {"chip": 20.0 + x[0], "site_2": 20.0 + x[2]}
        est = obs.update(t, u, 20.0, temps.get)
    assert est[1] == pytest.approx(20.0 + x[1], abs=1e-6)


def test_the_measured_sites_error_corrects_the_estimate() -> None:
    # The plant runs 5 °C under the model everywhere (radiation it does not know): the
    # measured sites' residuals carry that to the unmeasured site.
    obs = SiteObserver(MODEL, ["chip", "site_2"])
    u = [30.0, 30.0]
    truth = [20.0 + sum(g * p for g, p in zip(row, u, strict=True)) - 5.0 for row in MODEL.gains]
    est = obs.update(0.0, u, 20.0, {"chip": truth[0], "site_2": truth[2]}.get)
    assert est[1] == pytest.approx(truth[1])
    assert est[0] == truth[0] and est[2] == truth[2]  # a reading is a reading


def test_a_dead_zone_is_left_out_of_the_feed_forward_and_the_others_carry_it() -> None:
    healthy = feedforward_weights(MODEL.gains)
    w = feedforward_weights(MODEL.gains, {1})
    assert w[1] == 0.0 and w[0] > healthy[0]
    # The control site still sees what equal zones give it.
    assert 2.0 * w[0] == pytest.approx(2.0 + 0.5)


def test_a_model_without_one_time_constant_per_channel_is_refused() -> None:
    with pytest.raises(ValueError, match="tau_s"):
        PanelGainsSection(channels=["chip", "site_0"], gains_c_per_pct=[[1.0], [1.0]], tau_s=[10.0])


async def test_the_shipped_panel_runs_even_on_the_site_model_and_records_its_estimates(
    tmp_path: Path,
) -> None:
    true_peaks: list[float] = []

    def observe(plant: Plant) -> None:
        chips = [s.chip_c for s in plant.sites_integrated()]
        if not true_peaks:
            true_peaks.extend(chips)
        for i, v in enumerate(chips):
            true_peaks[i] = max(true_peaks[i], v)

    def on_event(sim: object, name: str, _: object) -> None:
        if name == "RunStarted":
            sim.plant.add_observer(observe)  # type: ignore[attr-defined]

    doc, sim = await run_recipe(PANEL_RECIPE, tmp_path, on_event=on_event)
    samples = sim.store.samples(doc["run_id"])
    sim.store.close()
    assert doc["result"] == "completed" and all(s["ok"] for s in doc["sites"])
    # Every true site peak within 1.5 °C of every other (was 2.8 °C: the sides ran hot).
    assert max(true_peaks) - min(true_peaks) < 1.5
    # The sides are judged on the model's estimates, recorded under marked channels, and
    # the judge's peak of each is within 1 °C of its true peak.
    for site in doc["sites"]:
        if not site["instrumented"]:
            assert site["channel"].endswith("_est") and "site model" in site["estimate"]
            assert abs(site["peak_c"] - true_peaks[site["site"]]) < 1.0
    assert any(s.temps_c.get("site_1_est") is not None for s in samples)
    assert all("site_1" not in s.temps_c for s in samples)  # never as a reading
