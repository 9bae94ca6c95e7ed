"""`python -m bench --json --quick`: one JSON object with every figure (no timing asserted)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys

import pytest

from bench.__main__ import print_human
from bench.cycle_bound import (
    backfill_time_s,
    chuck_reach_time_s,
    cycle_bound,
    pump_time_s,
    vent_time_s,
)
from bench.suite import FIGURES, TRACKING_KEYS, cpu_steal, steal_pct
from daemon.config import Limits
from daemon.recipe.load import load_recipe_file
from daemon.run.virtual import BOND_RECIPES, REPO
from drivers.clock import ManualClock
from drivers.protocols import OUT_FILM_CLAMP
from drivers.sim.plant import Plant, PlantParams


@pytest.mark.timeout(600)
def test_bench_json_has_every_figure_or_a_reason() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--json", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)  # the whole of stdout is one JSON object
    assert isinstance(out, dict)
    for key in ("cpu_model", "cores", "python"):
        assert out["machine"][key], out["machine"]
    # How quiet the shared host was during the run (Linux: a share in %; elsewhere null).
    steal = out["machine"]["steal_pct_during"]
    assert steal is None or 0.0 <= steal <= 100.0, steal
    for figure in FIGURES:
        assert figure in out, figure
        value = out[figure]
        if value is None:
            assert out["reasons"][figure], figure
        else:
            assert isinstance(value, int | float) and math.isfinite(value), (figure, value)
    # Figures that need nothing from another branch are measured, not excused.
    for figure in (
        "cycle_time_s",
        "cycle_time_lower_bound_s",
        "interlock_reaction_p99_ms",
        "sim_speedup",
        "device_poll_ms",
    ):
        assert out[figure] is not None, (figure, out["reasons"].get(figure))
    assert set(out["recipes"]) == {p.stem for p in BOND_RECIPES}
    for name, rec in out["recipes"].items():
        for key in TRACKING_KEYS:
            assert key in rec and (rec[key] is not None or rec["reasons"][key]), (name, key)
        assert rec["result"] == "completed", (name, rec["reason"])
        # A lower bound that a real run beats, in any step, is a wrong model. One control
        # period of slack: a step ends on a noisy reading (the gauge's 0.2 % noise can show
        # the vent's 950 mbar a few ms before the gas is there).
        for step in rec["steps"]:
            assert step["actual_s"] >= step["bound_s"] - 0.05, (name, step)
    assert out["interlock_reaction_per_fault"]
    # The human table (`python -m bench` without --json) renders the same object.
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        print_human(out)
    assert "device poll over the real drivers" in table.getvalue()
    for fault, row in out["interlock_reaction_per_fault"].items():
        assert row["detection_p50_ms"] >= 0 and row["reaction_p99_ms"] >= 0, (fault, row)


def test_bound_formulas_match_the_plants_gas_model() -> None:
    p = PlantParams()
    # 1 L at 1.5 L/s: e-fold every 2/3 s, from atmosphere to 1 mbar in ~4.6 s.
    assert pump_time_s(p, 1013.0, 1.0) == pytest.approx(
        1.0 / 1.5 * math.log((1013.0 - 0.02) / (1.0 - 0.02))
    )
    # Choked N2 at 300 mbar·L/s all the way to 581 mbar: at least 580/300 s.
    assert backfill_time_s(p, 1.0, 581.0) == pytest.approx(580.0 / 300.0, rel=1e-3)
    assert backfill_time_s(p, 1.0, 1000.0) > 580.0 / 300.0 + 419.0 / 300.0
    assert vent_time_s(p, 2.0, 950.0) == pytest.approx(
        1.0 / 5.0 * math.log((1013.0 - 2.0) / (1013.0 - 950.0))
    )
    assert math.isinf(pump_time_s(p, 10.0, 0.01))  # below the pump's ultimate pressure


def test_bound_follows_the_recipe_holds_and_ramps() -> None:
    recipe = load_recipe_file(REPO / "recipes" / "sac305-polyimide.toml", Limits()).recipe
    bound = {s.type: s.bound_s for s in cycle_bound(recipe).steps}
    # SAC305: 25 → 150 °C at 2.5 K/s, hold 30 s, → 245 °C at 2 K/s, hold 15 s.
    assert bound["reflow"] == pytest.approx(125 / 2.5 + 30 + 95 / 2.0 + 15, rel=1e-3)
    # 245 → 150 °C at the recipe's 3 K/s (the chip could shed heat faster).
    assert bound["cool"] == pytest.approx(95 / 3.0, rel=1e-3)


def test_chuck_bound_is_the_full_capacity_trajectory_through_the_fluid() -> None:
    p = PlantParams()
    # Closed form against a direct integration of the two nodes with the chiller at 900 W.
    tk = tf = 0.0
    t, h = 0.0, 0.001
    while tk > -7.0:
        g = p.g_chuck_fluid_flow_w_k * (tf - tk)
        tk += h * g / p.c_chuck_j_k
        tf += h * (-g - p.chiller_cool_max_w) / p.c_fluid_j_k
        t += h
    assert chuck_reach_time_s(p, p.chiller_cool_max_w, 7.0) == pytest.approx(t, abs=0.01)
    # Never below the capacity-only figure, and about one chuck–fluid lag (1/λ) above it.
    capacity_only = (p.c_chuck_j_k + p.c_fluid_j_k) * 7.0 / p.chiller_cool_max_w
    lam = p.g_chuck_fluid_flow_w_k * (1 / p.c_chuck_j_k + 1 / p.c_fluid_j_k)
    assert capacity_only < t < capacity_only + 1.0 / lam


def test_no_chiller_setpoint_beats_the_chuck_bound() -> None:
    # The plant's own chiller driven as hard as it goes (setpoint at the end of its range,
    # saturated from the first instant): its chuck reaches 16 °C no earlier than the bound.
    clock = ManualClock()
    plant = Plant(clock, PlantParams())
    p = plant.params
    plant.set_output(OUT_FILM_CLAMP, True)
    plant.chiller_set_setpoint(p.chiller_setpoint_min_c)
    plant.chiller_start()
    while plant.state.chuck_c > p.ambient_c - 7.0:
        clock.t += 0.05
    assert clock.t >= chuck_reach_time_s(p, p.chiller_cool_max_w, 7.0)


def test_steal_share_is_read_from_proc_stat() -> None:
    # user nice system idle iowait irq softirq steal (guest columns after it are not counted)
    before = cpu_steal("cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 50 0 25 400 5 0 2 18 0 0\n")
    after = cpu_steal("cpu  200 0 100 1500 20 0 10 170 0 0\ncpu0 1 1 1 1 1 1 1 1\n")
    assert before == (35, 1000)
    assert after == (170, 2000)
    assert steal_pct(before, after) == 13.5  # 135 of 1000 ticks
    assert steal_pct(before, None) is None
    with pytest.raises(ValueError, match="no aggregate"):
        cpu_steal("intr 1 2 3\n")
