"""Conformance checks on synthetic traces: each check fails when its condition is broken."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import random
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.judge.evaluate import evaluate
from daemon.judge.series import Trace as _Trace
from daemon.judge.series import extreme as _extreme
from daemon.judge.series import rates as _rates
from daemon.judge.types import Check, StepOutcome
from daemon.recipe.model import VacuumFilmBondRecipe
from daemon.run.result import build_result, decide_result
from daemon.store.trace import Sample

LIQUIDUS, SOLIDUS, TG, MARGIN = 220.0, 217.0, 150.0, 20.0
DT = 0.1  # 10 Hz, as the executor records

RECIPE: dict[str, Any] = {
    "kind": "vacuum_film_bond",
    "name": "test-bond",
    "materials": {
        "solder": {"name": "SAC305", "liquidus_c": LIQUIDUS, "solidus_c": SOLIDUS},
        "component": {"polymer": "PI", "tg_c": TG, "tg_margin_c": MARGIN},
    },
    "atmosphere": {"o2_max_ppm": 50.0},
    "steps": [
        {"type": "chuck_stabilize", "setpoint_c": 20.0},
        {
            "type": "purge",
            "cycles": 2,
            "pump_to_mbar": 1.0,
            "backfill_to_mbar": 1000.0,
            "o2_target_ppm": 10.0,
        },
        {"type": "pump_down", "target_mbar": 5.0},
        {
            "type": "reflow",
            "segments": [{"ramp_c_per_s": 2.0, "to_c": 245.0, "hold_s": 15.0}],
            "peak_window_c": {"min": 235.0, "max": 255.0},
            "time_above_liquidus_s": {"min": 20.0, "max": 90.0},
            "max_ramp_c_per_s": 3.0,
        },
        {"type": "cool", "to_c": 100.0, "max_rate_c_per_s": 2.0},
        {"type": "vent"},
    ],
}


def make_recipe(edit: Callable[[dict[str, Any]], None] | None = None) -> VacuumFilmBondRecipe:
    d = copy.deepcopy(RECIPE)
    if edit is not None:
        edit(d)
    return VacuumFilmBondRecipe.model_validate(d)


@dataclasses.dataclass
class Trace:
    samples: list[Sample]
    steps: list[StepOutcome]


def profile(
    *,
    ramp: float = 2.0,
    peak: float = 245.0,
    hold: float = 15.0,
    cool_rate: float = 1.5,
    noise: Callable[[int], float] = lambda i: 0.0,
) -> Trace:
    """A good vacuum-film bond at 10 Hz; the chip follows a ramp / hold / cool profile."""
    reflow_start = 15.0
    ramp_end = reflow_start + (peak - 25.0) / ramp
    cool_start = ramp_end + hold
    cool_end = cool_start + (peak - 100.0) / cool_rate
    plan = [
        ("chuck_stabilize", 0.0, 5.0),
        ("purge", 5.0, 10.0),
        ("pump_down", 10.0, reflow_start),
        ("reflow", reflow_start, cool_start),
        ("cool", cool_start, cool_end),
        ("vent", cool_end, cool_end + 3.0),
    ]

    def chip(t: float) -> float:
        if t < reflow_start:
            return 25.0
        if t < ramp_end:
            return 25.0 + ramp * (t - reflow_start)
        if t < cool_start:
            return peak
        return max(100.0, peak - cool_rate * (t - cool_start))

    samples: list[Sample] = []
    end = plan[-1][2]
    i = 0
    while (t := round(i * DT, 6)) < end:
        step = next(name for name, a, b in plan if a <= t < b)
        c = chip(t)
        pressure, o2 = {
            "chuck_stabilize": (1000.0, 209_000.0),
            "purge": (500.0, 100.0),
            "vent": (950.0, 3.0),
        }.get(step, (5.0, 3.0))
        if step == "pump_down" and t < 11.0:
            pressure = 1000.0  # the purged atmosphere, sealed in as pump-down starts
        samples.append(
            Sample(
                t_s=t,
                step=step,
                setpoint_c=c,
                temps_c={
                    "chip": c + noise(i),
                    "component": 25.0 + 0.4 * (c - 25.0),
                    "chuck": 20.0 + 0.02 * (c - 25.0),
                },
                pressure_mbar=pressure,
                o2_ppm=o2,
                lamp_pct=50.0 if step == "reflow" else 0.0,
            )
        )
        i += 1
    steps = [StepOutcome(name, name, "completed", a, b) for name, a, b in plan]
    return Trace(samples, steps)


def patch(
    samples: list[Sample],
    t0: float,
    t1: float,
    *,
    temps: dict[str, float | None] | None = None,
    **fields: Any,
) -> list[Sample]:
    """The samples with ``t0 <= t < t1`` changed."""
    out = []
    for s in samples:
        if not t0 <= s.t_s < t1:
            out.append(s)
            continue
        changed = dict(fields)
        if temps is not None:
            changed["temps_c"] = {**s.temps_c, **temps}
        out.append(dataclasses.replace(s, **changed))
    return out


def run(
    trace: Trace, recipe: VacuumFilmBondRecipe | None = None
) -> tuple[dict[str, Check], dict[str, float | None]]:
    checks, metrics = evaluate(recipe or make_recipe(), trace.samples, trace.steps)
    by_name = {c.check: c for c in checks}
    assert len(by_name) == len(checks), "check names must be unique"
    return by_name, metrics


ALL_CHECKS = {
    "component_below_tg",
    "chuck_below_tg",
    "chip_hotter_than_component",
    "vacuum_held",
    "o2_ppm",
    "o2_partial_pressure",
    "purge_before_pump_down",
    "peak_in_window",
    "time_above_liquidus",
    "heating_ramp_rate",
    "cooling_rate",
}


def only_failure(checks: dict[str, Check]) -> Check:
    failed = [c for c in checks.values() if not c.ok]
    assert len(failed) == 1, [(c.check, c.detail) for c in failed]
    return failed[0]


# ---------------------------------------------------------------------------- the good run


def test_good_run_passes_every_check_and_reports_metrics() -> None:
    checks, metrics = run(profile())
    assert set(checks) == ALL_CHECKS
    assert [(c.check, c.detail) for c in checks.values() if not c.ok] == []
    assert all(c.condition for c in checks.values())
    assert metrics["peak_c"] == pytest.approx(245.0)
    # chip ≥ 220 °C from t = 112.5 s (ramp) to t = 140 + 25 / 1.5 s (cool)
    assert metrics["time_above_liquidus_s"] == pytest.approx(140 + 25 / 1.5 - 112.5, abs=0.05)
    assert metrics["max_component_c"] == pytest.approx(113.0)
    assert metrics["max_chuck_c"] == pytest.approx(24.4)
    assert metrics["min_pressure_mbar"] == pytest.approx(5.0)
    assert metrics["max_o2_ppm"] == pytest.approx(3.0)
    assert metrics["max_ramp_c_per_s"] == pytest.approx(2.0, abs=0.01)
    assert metrics["max_cool_rate_c_per_s"] == pytest.approx(1.5, abs=0.01)
    assert metrics["cycle_time_s"] == pytest.approx(140 + 145 / 1.5 + 3.0, abs=0.01)


# ---------------------------------------------------------------------------- temperatures


def test_component_above_tg_margin_during_heating_fails() -> None:
    t = profile()
    c = only_failure(
        run(Trace(patch(t.samples, 60.0, 60.05, temps={"component": 131.2}), t.steps))[0]
    )
    assert c.check == "component_below_tg"
    assert c.value == pytest.approx(131.2)
    assert c.limit == TG - MARGIN
    assert "131.2 °C at t=60.0 s in step reflow" in c.detail


def test_component_is_judged_only_while_heating_and_cooling() -> None:
    t = profile()
    checks, _ = run(Trace(patch(t.samples, 0.0, 5.0, temps={"component": 140.0}), t.steps))
    assert checks["component_below_tg"].ok


def test_component_unmeasured_during_heating_fails() -> None:
    t = profile()
    samples = patch(t.samples, 50.0, 50.05, temps={"component": None})
    c = only_failure(run(Trace(samples, t.steps))[0])
    assert c.check == "component_below_tg"
    assert "not measured" in c.detail


def test_chuck_at_tg_anywhere_in_the_run_fails() -> None:
    t = profile()
    checks, _ = run(
        Trace(patch(t.samples, t.samples[-1].t_s, 1e9, temps={"chuck": 149.9}), t.steps)
    )
    assert checks["chuck_below_tg"].ok
    c = only_failure(
        run(Trace(patch(t.samples, t.samples[-1].t_s, 1e9, temps={"chuck": 150.0}), t.steps))[0]
    )
    assert c.check == "chuck_below_tg"
    assert c.value == 150.0
    assert "step vent" in c.detail


def test_component_hotter_than_chip_while_molten_fails() -> None:
    t = profile()
    # t = 130 s: chip at the 245 °C hold
    samples = patch(t.samples, 130.0, 130.05, temps={"component": 246.0})
    checks, _ = run(Trace(samples, t.steps))
    c = checks["chip_hotter_than_component"]
    assert not c.ok
    assert c.value == pytest.approx(-1.0)
    assert "t=130.0 s" in c.detail


def test_component_hotter_than_solid_chip_is_not_a_bond_failure() -> None:
    t = profile()
    # t = 20 s: chip at 35 °C, solder solid
    checks, _ = run(Trace(patch(t.samples, 20.0, 20.05, temps={"component": 40.0}), t.steps))
    assert checks["chip_hotter_than_component"].ok
    assert checks["chip_hotter_than_component"].value == pytest.approx(
        0.6 * (SOLIDUS - 25), abs=0.5
    )


# ---------------------------------------------------------------------------- vacuum and O2


def test_pressure_rising_during_reflow_fails() -> None:
    t = profile()
    c = only_failure(run(Trace(patch(t.samples, 100.0, 101.0, pressure_mbar=950.0), t.steps))[0])
    assert c.check == "vacuum_held"
    assert c.value == 950.0
    assert "step reflow" in c.detail


def test_pressure_unmeasured_during_reflow_fails() -> None:
    t = profile()
    checks, _ = run(Trace(patch(t.samples, 100.0, 100.05, pressure_mbar=None), t.steps))
    assert not checks["vacuum_held"].ok
    assert "not measured" in checks["vacuum_held"].detail


@pytest.mark.parametrize("keep_vacuum", [True, False])
def test_pressure_during_cooling_matters_only_when_the_cool_step_keeps_vacuum(
    keep_vacuum: bool,
) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["steps"][4]["keep_vacuum"] = keep_vacuum

    t = profile()
    samples = patch(t.samples, 200.0, 201.0, pressure_mbar=950.0)
    checks, _ = run(Trace(samples, t.steps), make_recipe(edit))
    assert checks["vacuum_held"].ok is not keep_vacuum


def test_o2_above_limit_after_pump_down_started_fails() -> None:
    t = profile()
    c = only_failure(run(Trace(patch(t.samples, 10.2, 10.5, o2_ppm=60.0), t.steps))[0])
    assert c.check == "o2_ppm"
    assert c.value == 60.0
    assert "step pump_down" in c.detail


def test_o2_before_pump_down_and_after_heating_is_not_judged() -> None:
    t = profile()
    samples = patch(t.samples, 5.0, 10.0, o2_ppm=5000.0)
    samples = patch(samples, t.steps[-1].started_t_s, 1e9, o2_ppm=5000.0)
    checks, _ = run(Trace(samples, t.steps))
    assert checks["o2_ppm"].ok


def test_o2_not_measured_during_heating_fails_but_during_pump_down_is_skipped() -> None:
    t = profile()
    checks, _ = run(Trace(patch(t.samples, 11.0, 14.0, o2_ppm=None), t.steps))
    assert checks["o2_ppm"].ok
    checks, _ = run(Trace(patch(t.samples, 80.0, 80.05, o2_ppm=None), t.steps))
    # Under vacuum the proof is the partial pressure, and a gap in it fails.
    assert not checks["o2_partial_pressure"].ok
    assert "not measured" in checks["o2_partial_pressure"].detail
    # With the vacuum lost, a gap fails the concentration check as well.
    lost = patch(t.samples, 80.0, 80.05, o2_ppm=None, pressure_mbar=500.0)
    checks, _ = run(Trace(lost, t.steps))
    assert not checks["o2_ppm"].ok
    assert "not measured" in checks["o2_ppm"].detail


def test_o2_partial_pressure_above_limit_fails() -> None:
    def edit(d: dict[str, Any]) -> None:
        d["atmosphere"]["o2_max_partial_mbar"] = 1e-5

    c = only_failure(run(profile(), make_recipe(edit))[0])
    assert c.check == "o2_partial_pressure"
    assert c.value == pytest.approx(3e-3)  # 3 ppm at 1000 mbar as pump-down starts


# ---------------------------------------------------------------------------- purge


def _with_purge(result: str, ended: float | None = 10.0) -> list[StepOutcome]:
    steps = profile().steps
    steps[1] = dataclasses.replace(steps[1], result=result, ended_t_s=ended)
    return steps


@pytest.mark.parametrize(
    ("steps", "words"),
    [
        (_with_purge("aborted"), "ended aborted"),
        (_with_purge("skipped"), "ended skipped"),
        (_with_purge("completed", ended=10.5), "had not ended"),
        ([s for s in profile().steps if s.type != "purge"], "no purge ran"),
    ],
)
def test_purge_not_completed_before_pump_down_fails(steps: list[StepOutcome], words: str) -> None:
    checks, _ = run(Trace(profile().samples, steps))
    assert not checks["purge_before_pump_down"].ok
    assert words in checks["purge_before_pump_down"].detail


def test_recipe_without_purge_fails_the_purge_check() -> None:
    def edit(d: dict[str, Any]) -> None:
        del d["steps"][1]

    checks, _ = run(profile(), make_recipe(edit))
    assert not checks["purge_before_pump_down"].ok


# ---------------------------------------------------------------------------- profile


@pytest.mark.parametrize(("peak", "words"), [(260.0, "above"), (232.0, "below")])
def test_peak_outside_window_fails(peak: float, words: str) -> None:
    checks, _ = run(profile(peak=peak))
    c = checks["peak_in_window"]
    assert not c.ok
    assert c.value == pytest.approx(peak)
    assert c.limit == "[235, 255]"
    assert words in c.detail


@pytest.mark.parametrize(("hold", "words"), [(80.0, "too long"), (0.0, "too short")])
def test_time_above_liquidus_outside_window_fails(hold: float, words: str) -> None:
    checks, _ = run(profile(peak=236.0 if hold == 0.0 else 245.0, hold=hold, cool_rate=1.9))
    c = checks["time_above_liquidus"]
    assert not c.ok, c.detail
    assert words in c.detail


def test_ramp_faster_than_limit_fails() -> None:
    c = only_failure(run(profile(ramp=3.5))[0])
    assert c.check == "heating_ramp_rate"
    assert c.value == pytest.approx(3.5, abs=0.01)


def test_cooling_faster_than_limit_fails() -> None:
    c = only_failure(run(profile(cool_rate=2.5))[0])
    assert c.check == "cooling_rate"
    assert c.value == pytest.approx(2.5, abs=0.01)


@pytest.mark.parametrize(
    "noise",
    [
        lambda i: 0.1 if i % 2 else -0.1,  # the worst case for a sample-to-sample difference
        lambda i: 0.1 if (i // 10) % 2 else -0.1,  # the worst case for a 2 s least-squares fit
        lambda i: random.Random(i).uniform(-0.1, 0.1),
    ],
    ids=["alternating", "square", "uniform"],
)
def test_rates_are_not_tripped_by_thermocouple_noise(noise: Callable[[int], float]) -> None:
    # 0.2 °C/s under each limit: 2.8 against 3 °C/s heating, 1.8 against 2 °C/s cooling.
    t = profile(ramp=2.8, cool_rate=1.8, noise=noise)
    chip = [s.temps_c["chip"] or 0.0 for s in t.samples]
    naive = max(abs(b - a) for a, b in itertools.pairwise(chip)) / DT
    if noise(0) != noise(1):
        assert naive > 3.0  # a difference of consecutive samples would trip on the noise
    checks, _ = run(t)
    assert checks["heating_ramp_rate"].ok, checks["heating_ramp_rate"].detail
    assert checks["cooling_rate"].ok, checks["cooling_rate"].detail


# ---------------------------------------------------------------------------- aborted runs


def test_checks_of_phases_never_reached_fail_as_not_reached() -> None:
    t = profile()
    samples = [s for s in t.samples if s.t_s < 12.0]
    steps = [*t.steps[:2], StepOutcome("pump_down", "pump_down", "aborted", 10.0, 12.0)]
    checks, metrics = run(Trace(samples, steps))
    for name in (
        "component_below_tg",
        "vacuum_held",
        "o2_ppm",
        "o2_partial_pressure",
        "peak_in_window",
        "time_above_liquidus",
        "heating_ramp_rate",
        "cooling_rate",
        "chip_hotter_than_component",
    ):
        assert not checks[name].ok, name
        assert checks[name].detail.startswith("not reached"), (name, checks[name].detail)
    assert checks["chuck_below_tg"].ok
    assert checks["purge_before_pump_down"].ok
    assert metrics["max_ramp_c_per_s"] is None
    assert metrics["cycle_time_s"] == pytest.approx(12.0)


def test_two_cool_steps_are_judged_each_against_its_own_limit() -> None:
    def edit(d: dict[str, Any]) -> None:
        d["steps"][4].update(name="cool_fast", max_rate_c_per_s=2.0)
        d["steps"].insert(
            5, {"type": "cool", "name": "cool_slow", "to_c": 90.0, "max_rate_c_per_s": 1.0}
        )

    t = profile()
    samples = [
        dataclasses.replace(s, step="cool_fast") if s.step == "cool" else s for s in t.samples
    ]
    checks, _ = run(Trace(samples, t.steps), make_recipe(edit))
    assert checks["cooling_rate@cool_fast"].ok
    assert checks["cooling_rate@cool_fast"].value == pytest.approx(1.5, abs=0.01)
    assert checks["cooling_rate@cool_slow"].detail.startswith("not reached")


# ---------------------------------------------------------------------------- the verdict


def _doc(trace: Trace, *, stopped: bool = False) -> dict[str, Any]:
    checks, metrics = evaluate(make_recipe(), trace.samples, trace.steps)
    doc = build_result(
        run_id="r1",
        recipe_name="test-bond",
        recipe_version=3,
        recipe_sha256="ab" * 32,
        lot_id="LOT-1",
        operator="op",
        equipment_id="bonder-01",
        software_version="0.1.0",
        config_hash="cfg",
        started_at=datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
        ended_at=datetime(2024, 5, 1, 8, 5, tzinfo=UTC),
        steps=trace.steps,
        checks=checks,
        metrics=metrics,
        aborted=stopped,
    )
    out = doc.to_json_dict()
    json.dumps(out, allow_nan=False)  # publishable as strict JSON
    return out


def test_result_document_of_a_good_run_is_completed() -> None:
    doc = _doc(profile())
    assert doc["result"] == "completed"
    assert doc["recipe"] == {"name": "test-bond", "version": 3, "sha256": "ab" * 32}
    assert doc["started_at"] == "2024-05-01T08:00:00Z"
    assert doc["steps"][3] == {
        "type": "reflow",
        "name": "reflow",
        "result": "completed",
        "duration_s": 125.0,
    }
    assert {c["check"] for c in doc["conformance"]} == ALL_CHECKS
    assert set(doc["conformance"][0]) == {"check", "ok", "value", "limit", "detail", "condition"}
    assert doc["metrics"]["peak_c"] == pytest.approx(245.0)


def test_result_document_of_a_failed_check_is_failed_and_names_it() -> None:
    doc = _doc(profile(peak=260.0))
    assert doc["result"] == "failed"
    assert "peak_in_window" in doc["reason"]


def test_result_document_of_a_stopped_run_is_aborted() -> None:
    assert _doc(profile(), stopped=True)["result"] == "aborted"


def test_result_document_takes_iso_times_and_alarm_mappings() -> None:
    doc = build_result(
        run_id="r2",
        recipe_name="test-bond",
        recipe_version=1,
        recipe_sha256="0" * 64,
        lot_id="L",
        operator="",
        equipment_id="bonder-01",
        software_version="0.1.0",
        config_hash="cfg",
        started_at="2024-05-01T08:00:00.000Z",
        ended_at=None,
        steps=[StepOutcome("purge", "purge", "running", 0.0, None)],
        checks=[],
        metrics={"peak_c": float("nan")},
        alarms=[{"t_s": 1.5, "code": "estop", "severity": "alarm", "message": "E-stop"}],
        aborted=True,
        reason="E-stop",
    ).to_json_dict()
    assert doc["started_at"] == "2024-05-01T08:00:00Z"
    assert doc["ended_at"] is None
    assert doc["steps"] == [
        {"type": "purge", "name": "purge", "result": "aborted", "duration_s": None}
    ]
    assert doc["metrics"] == {"peak_c": None}
    assert doc["alarms"][0]["code"] == "estop"
    assert (doc["result"], doc["reason"]) == ("aborted", "E-stop")


def test_verdict_rule() -> None:
    ok = Check("x", True, None, None, "", "")
    bad = dataclasses.replace(ok, ok=False)
    done = StepOutcome("purge", "purge", "completed", 0.0, 1.0)
    failed = dataclasses.replace(done, result="failed")
    aborted = dataclasses.replace(done, result="aborted")
    assert decide_result([done], [ok], aborted=False) == "completed"
    assert decide_result([done], [ok, bad], aborted=False) == "failed"
    assert decide_result([done, failed], [ok], aborted=False) == "failed"
    assert decide_result([done, aborted], [ok], aborted=False) == "aborted"
    assert decide_result([done], [ok], aborted=True) == "aborted"
    assert decide_result([], [ok], aborted=False) == "failed"


def test_o2_ppm_is_judged_where_there_is_gas_and_partial_pressure_under_vacuum() -> None:
    # Under the film's vacuum the residual gas is mostly leaked-in air: a high ppm there is
    # physics, not contamination; the partial pressure is the proof.
    def edit(d: dict[str, Any]) -> None:
        d["atmosphere"]["o2_max_partial_mbar"] = 0.05

    t = profile()
    checks, _ = run(
        Trace(patch(t.samples, 60.0, 80.0, o2_ppm=150_000.0), t.steps), make_recipe(edit)
    )
    assert checks["o2_ppm"].ok
    assert not checks["o2_partial_pressure"].ok  # 150 000 ppm × 5 mbar = 0.75 mbar


# ---------------------------------------------------------------- the judge's fast paths
# evaluate() runs at the end of every run (ADR 0106): its columns and extremes are computed
# in whole-list passes, and they must give what the plain per-sample definitions give.


def _reference_extreme(
    span: list[bool], values: list[float | None], highest: bool
) -> tuple[float | None, int, int, int, int]:
    value: float | None = None
    at, seen, missing, first_missing = -1, 0, 0, -1
    for i, (inside, v) in enumerate(zip(span, values, strict=True)):
        if not inside:
            continue
        seen += 1
        if v is None:
            missing += 1
            first_missing = i if first_missing < 0 else first_missing
        elif value is None or (v > value if highest else v < value):
            value, at = v, i
    return value, at, seen, missing, first_missing


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.one_of(st.none(), st.sampled_from([-1.5, -0.0, 0.0, 2.0, 7.25, 7.25])),
        ),
        max_size=40,
    ),
    st.booleans(),
)
def test_extreme_finds_the_first_extreme_sample_and_counts_the_gaps(
    pairs: list[tuple[bool, float | None]], highest: bool
) -> None:
    span = [inside for inside, _ in pairs]
    values = [v for _, v in pairs]
    ext = _extreme(span, values, highest=highest)
    got = (ext.value, ext.at, ext.seen, ext.missing, ext.first_missing)
    want = _reference_extreme(span, values, highest)
    assert got == want
    # The same sample, not only an equal value: -0.0 and 0.0 tie, the first one is reported.
    if ext.value is not None and want[0] is not None:
        assert math.copysign(1.0, ext.value) == math.copysign(1.0, want[0])


def test_extreme_refuses_a_span_of_another_length() -> None:
    with pytest.raises(ValueError, match="span has 2 samples, the series 3"):
        _extreme([True, True], [1.0, 2.0, 3.0])


def test_trace_columns_are_the_per_sample_readings() -> None:
    """Chip, component average and hottest chuck, with gaps, NaN, -0.0 and a changed channel
    set."""
    rng = random.Random(7)
    nan = float("nan")
    layouts = [
        ("chip", "component", "chuck"),
        ("chip", "component", "component2", "component3", "chuck", "chuck2"),
        ("chuck2", "component3", "chip", "component", "chuck"),
        ("chip",),
    ]
    samples = []
    for i in range(400):
        names = layouts[(i // 37) % len(layouts)]
        temps = {
            k: rng.choice([None, nan, -0.0, rng.uniform(20.0, 260.0), rng.uniform(20.0, 260.0)])
            for k in names
        }
        samples.append(
            Sample(i * 0.05, "reflow", None, temps, pressure_mbar=5.0, o2_ppm=3.0, lamp_pct=0.0)
        )
    tr = _Trace(make_recipe(), samples)

    def valid(v: float | None) -> float | None:
        return None if v is None or math.isnan(v) else v

    def same(a: float | None, b: float | None) -> bool:  # bit for bit, None for None
        return (a is None and b is None) or (
            a is not None and b is not None and struct.pack("d", a) == struct.pack("d", b)
        )

    for s, chip, comp, chuck in zip(samples, tr.chip, tr.component, tr.chuck, strict=True):
        assert same(chip, valid(s.temps_c.get("chip")))
        assert same(comp, valid(s.component_avg_c()))
        hot = [
            x for k, v in s.temps_c.items() if k.startswith("chuck") and (x := valid(v)) is not None
        ]
        assert same(chuck, max(hot) if hot else None)


def test_rates_are_computed_in_heating_and_cooling_steps_only() -> None:
    tr = _Trace(make_recipe(), profile().samples)
    rated = {s.step for s, r in zip(tr.samples, tr.rate, strict=True) if r is not None}
    assert rated == {"reflow", "cool"}
    # Inside them, the rate is the step's own least-squares slope, sample for sample.
    start = 0
    for end in range(1, len(tr.samples) + 1):
        if end == len(tr.samples) or tr.samples[end].step != tr.samples[start].step:
            if tr.samples[start].step in ("reflow", "cool"):
                assert tr.rate[start:end] == _rates(tr.t[start:end], tr.chip[start:end])
            start = end


def _fit_each_window(t: list[float], values: list[float | None]) -> list[float | None]:
    """The rate as its definition says: a fresh least-squares fit of every centred window."""
    pts = [(x, v) for x, v in zip(t, values, strict=True) if v is not None]
    out: list[float | None] = []
    for tc, v in zip(t, values, strict=True):
        win = [(x - tc, y) for x, y in pts if tc - 1.0 <= x <= tc + 1.0] if v is not None else []
        if len(win) < 5 or win[-1][0] - win[0][0] < 1.2:
            out.append(None)
            continue
        n = len(win)
        sx = math.fsum(x for x, _ in win)
        sy = math.fsum(y for _, y in win)
        sxx = math.fsum(x * x for x, _ in win)
        sxy = math.fsum(x * y for x, y in win)
        den = n * sxx - sx * sx
        out.append((n * sxy - sx * sy) / den if den > 0 else None)
    return out


@settings(max_examples=60, deadline=None)
@given(
    t0=st.floats(0.0, 1000.0),
    n=st.integers(0, 700),
    line=st.tuples(st.floats(-50.0, 400.0), st.floats(-20.0, 20.0)),
    gaps=st.lists(st.integers(0, 699), max_size=40),
    jitter=st.integers(0, 2**32 - 1),
)
def test_sliding_rate_window_equals_a_fresh_fit_of_each_window(
    t0: float, n: int, line: tuple[float, float], gaps: list[int], jitter: int
) -> None:
    # The sums slide over thousands of samples; they must not drift from what a fresh fit of
    # each window gives: missing readings, gaps in time and noise included.
    level, slope = line
    rng = random.Random(jitter)
    t: list[float] = []
    x = t0
    for i in range(n):
        x += 0.05 if i % 97 else rng.choice([0.05, 0.3, 2.5])  # now and then a gap in time
        t.append(x)
    values: list[float | None] = [
        None if i in gaps else level + slope * (ti - t0) + rng.gauss(0.0, 0.1)
        for i, ti in enumerate(t)
    ]
    got, want = _rates(t, values), _fit_each_window(t, values)
    assert [g is None for g in got] == [w is None for w in want]
    for g, w in zip(got, want, strict=True):
        if g is not None and w is not None:
            assert g == pytest.approx(w, rel=1e-9, abs=1e-9)
