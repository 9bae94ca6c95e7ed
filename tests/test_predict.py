"""`bonderd predict`: a recipe's run on the machine's twin, before the machine runs it.

The recipes in tests/data/recipes/twin-*.toml pass `bonderd check` and fail on the machine;
the prediction must name what fails, and a run of the same recipe must then fail on it.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from daemon.config import Settings
from daemon.judge.margins import bounds
from daemon.recipe.load import load_recipe_file
from daemon.run.predict import predict
from daemon.run.rig_sim import disturbance, disturbed
from daemon.run.virtual import run_recipe
from drivers.sim.plant import PlantParams
from tests.simrun import REPO

DATA = REPO / "tests" / "data" / "recipes"
SAC = REPO / "recipes" / "sac305-polyimide.toml"
SHORT_HOLD = DATA / "twin-short-peak-hold.toml"
FAST_COOL = DATA / "twin-cool-too-fast-for-chiller.toml"
SHORT_SOAK = DATA / "twin-chuck-soak-too-short.toml"


def settings() -> Settings:
    # The harness's machine: default limits, the shipped simulation model, no environment.
    return Settings.model_construct()


def bonderd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )


def prediction(path: Path, **kw: Any) -> dict[str, Any]:
    s = settings()
    return predict(load_recipe_file(path, s.limits), s, source=str(path), **kw)


def actual(path: Path, tmp_path: Path) -> dict[str, Any]:
    doc, _ = asyncio.run(run_recipe(path, tmp_path))
    return doc


def failed_step(doc_steps: list[dict[str, Any]]) -> str | None:
    return next((s["name"] for s in doc_steps if s["result"] != "completed"), None)


@pytest.mark.parametrize("recipe", [SHORT_HOLD, FAST_COOL, SHORT_SOAK], ids=lambda p: p.stem)
def test_a_recipe_that_passes_check_but_not_the_machine_is_predicted_to_fail_as_it_then_does(
    recipe: Path, tmp_path: Path
) -> None:
    assert bonderd("check", str(recipe)).returncode == 0  # validation sees nothing wrong

    p = prediction(recipe)
    doc = actual(recipe, tmp_path)

    assert p["verdict"] == "fail"
    assert doc["result"] != "completed"
    assert p["result"] == doc["result"]
    assert p["reason"] == doc["reason"]
    assert p["failed_checks"] == [c["check"] for c in doc["conformance"] if not c["ok"]]
    assert failed_step(p["steps"]) == failed_step(doc["steps"])


def test_short_peak_hold_names_time_above_liquidus_with_a_negative_margin() -> None:
    p = prediction(SHORT_HOLD)
    assert p["result"] == "failed"
    assert p["failed_checks"] == ["time_above_liquidus"]
    tal = next(c for c in p["checks"] if c["check"] == "time_above_liquidus")
    assert (tal["lo"], tal["hi"], tal["unit"]) == (30.0, 75.0, "s")
    assert tal["value"] < 30.0
    assert tal["margin"] == pytest.approx(tal["value"] - 30.0, abs=1e-6)
    assert tal["margin_fraction"] == pytest.approx(tal["margin"] / 45.0, abs=1e-6)
    assert p["min_margin_fraction"] == pytest.approx(tal["margin_fraction"])
    assert p["interlocks"] == []  # nothing trips: the parts are simply not bonded


@pytest.mark.parametrize(
    ("recipe", "step"), [(FAST_COOL, "cool"), (SHORT_SOAK, "chuck_stabilize")], ids=["cool", "soak"]
)
def test_a_step_that_cannot_reach_its_goal_in_time_is_predicted_to_abort_there(
    recipe: Path, step: str
) -> None:
    p = prediction(recipe)
    assert p["result"] == "aborted"
    assert failed_step(p["steps"]) == step
    assert f"step '{step}' did not reach its goal" in p["reason"]
    assert [i["code"] for i in p["interlocks"]] == ["step_failed"]


def test_every_shipped_recipe_is_predicted_to_pass_with_its_margins() -> None:
    proc = bonderd("predict", *sorted(str(p) for p in (REPO / "recipes").glob("*.toml")), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["verdict"] == "pass" and doc["prediction"] is True
    assert doc["twin"]["thermal_model"] == "shipped simulation model"  # no [thermal] given
    for p in doc["recipes"]:
        assert p["verdict"] == "pass", p["source"]
        assert p["failed_checks"] == [] and p["interlocks"] == []
        assert p["cycle_s"] > 0 and p["steps"]
        numeric = [c for c in p["checks"] if c["margin"] is not None]
        assert numeric, p["source"]
        assert all(c["margin"] >= 0 for c in numeric)
    sac = next(p for p in doc["recipes"] if p["recipe"]["name"] == "sac305-polyimide")
    peak = next(c for c in sac["checks"] if c["check"] == "peak_in_window")
    assert (peak["lo"], peak["hi"], peak["unit"]) == (238.0, 252.0, "°C")
    assert peak["margin"] == pytest.approx(min(peak["value"] - 238, 252 - peak["value"]))
    assert sac["cycle_s"] == pytest.approx(sum(s["duration_s"] for s in sac["steps"]), abs=0.5)


def test_the_same_seeds_give_the_same_document_in_one_process_or_in_workers() -> None:
    one = prediction(SAC, seeds=3, workers=1)
    two = prediction(SAC, seeds=3, workers=2)
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)
    seeds = one["seeds"]
    assert seeds["n"] == 3 and [r["seed"] for r in seeds["runs"]] == [1, 2, 3]
    assert seeds["yield"] == 1.0 and seeds["passed"] == 3
    tal = next(c for c in seeds["checks"] if c["check"] == "time_above_liquidus")
    assert tal["pass_share"] == 1.0
    assert tal["worst_margin"] is not None and tal["worst_margin"] > 0
    assert tal["cpk"] is not None and tal["cpk"] > 1.33  # a capable process at this margin
    # The disturbed machines differ from each other: the seeds are not one run three times.
    assert len({r["disturbance"]["lamp_output"] for r in seeds["runs"]}) == 3
    o2 = {c["check"]: c for c in seeds["checks"]}["o2_partial_pressure"]
    assert o2["std"] is not None and o2["std"] > 0


def test_a_predicted_failure_exits_1_and_an_invalid_recipe_or_config_exits_2(
    tmp_path: Path,
) -> None:
    proc = bonderd("predict", str(SHORT_HOLD), "--json")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["recipes"][0]["failed_checks"] == ["time_above_liquidus"]

    bad = DATA / "bad-order.toml"
    proc = bonderd("predict", str(bad))
    assert proc.returncode == 2
    assert "bad-order.toml" in proc.stderr and proc.stdout == ""

    config = tmp_path / "bonderd.toml"
    config.write_text("[limits]\nchip_max_c = -5\n", encoding="utf-8")
    proc = bonderd("predict", str(SAC), "--config", str(config))
    assert proc.returncode == 2
    assert "chip_max_c" in proc.stderr


def test_the_report_of_a_prediction_says_so_in_its_title_and_on_every_chart(
    tmp_path: Path,
) -> None:
    proc = bonderd("predict", str(SHORT_HOLD), "--report", str(tmp_path))
    assert proc.returncode == 1, proc.stderr[-3000:]
    (page,) = tmp_path.glob("*.html")
    assert f"report (prediction): {page}" in proc.stdout
    html = page.read_text(encoding="utf-8")
    assert re.search(r"<title>PREDICTION — Run report", html)
    charts = re.findall(r"<svg .*?</svg>", html, flags=re.S)
    assert len(charts) >= 3
    for svg in charts:
        assert re.search(r"<title>[^<]* — PREDICTION</title>", svg)
        assert 'class="watermark"' in svg
    assert "time_above_liquidus" in html  # the failed check, as in any report


def test_margins_follow_what_each_limit_bounds() -> None:
    recipe = load_recipe_file(SAC, settings().limits).recipe
    window = bounds({"check": "peak_in_window", "limit": "[238, 252]"}, recipe)
    ceiling = bounds({"check": "cooling_rate@cool", "limit": 3.0}, recipe)
    floor = bounds({"check": "chip_hotter_than_component", "limit": 0.0}, recipe)
    assert window is not None and ceiling is not None and floor is not None
    assert window.margin(250.0) == pytest.approx(2.0)
    assert window.fraction(2.0) == pytest.approx(2.0 / 14.0)
    assert ceiling.margin(3.3) == pytest.approx(-0.3)  # outside: negative
    assert floor.margin(12.0) == 12.0 and floor.fraction(12.0) is None  # no width at zero
    assert bounds({"check": "purge_before_pump_down", "limit": "purge first"}, recipe) is None
    assert bounds({"check": "a_check_nobody_declared", "limit": 1.0}, recipe) is None
    # mean 245, 7 °C to either limit, σ = √2
    assert window.cpk([244.0, 246.0]) == pytest.approx(7.0 / (3 * 2**0.5))


def test_disturbances_stay_within_their_specification_and_depend_on_the_seed_alone() -> None:
    nominal = PlantParams()
    draws = [disturbance(n) for n in range(1, 51)]
    assert draws == [disturbance(n) for n in range(1, 51)]
    for d in draws:
        assert 0.95 <= d.lamp_output <= 1.05
        assert 0.90 <= d.solder_mass <= 1.10
        assert 0.5 * nominal.leak_mbar_l_s <= d.leak_mbar_l_s <= 5 * nominal.leak_mbar_l_s
        p = disturbed(nominal, d)
        assert p.frac_to_chips == pytest.approx(nominal.frac_to_chips * d.lamp_output)
        assert p.solder_latent_j == pytest.approx(nominal.solder_latent_j * d.solder_mass)
        assert p.chiller_start_c == d.chiller_start_c
    assert max(d.lamp_output for d in draws) > 1.03 and min(d.lamp_output for d in draws) < 0.97
