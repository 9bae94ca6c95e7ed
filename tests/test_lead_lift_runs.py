"""Lead-lift runs on the simulated machine (virtual time): faults a process engineer and a
maintenance tech would ask about, judged on the trace, the record and the plant itself."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from daemon.app.cli import main
from daemon.config import Limits
from daemon.errors import CommandRefused
from daemon.recipe.load import LoadedRecipe, parse_recipe
from drivers.sim.faults import parse_scenario
from drivers.sim.plant import PlantParams
from tests.simrun import REPO, SimRun, run_recipe

UV = REPO / "recipes/lead-lift-uv.toml"
HEAT = REPO / "recipes/lead-lift-heat.toml"


def _release_and_lift_only(path: Path = UV) -> LoadedRecipe:
    """The shipped recipe cut after its lift: a valid recipe, and a short run."""
    text = path.read_text()
    cut = text.index('[[steps]]\ntype = "encapsulate"')
    return parse_recipe(text[:cut].encode(), f"{path.name} (release + lift)", Limits())


def _fault(step: str, device: str, kind: str, after_s: float) -> str:
    return (
        f'[[fault]]\nat_step = "{step}"\nafter_s = {after_s}\ndevice = "{device}"\n'
        f'kind = "{kind}"\n'
    )


async def test_uv_source_failing_during_release_aborts_before_the_stage_moves(
    tmp_path: Path,
) -> None:
    scenario = parse_scenario(_fault("uv_release", "uv", "fail", 5.0))
    doc, sim = await run_recipe(UV, tmp_path, scenario=scenario)
    assert doc["result"] == "aborted"
    assert "UV" in doc["reason"] and "uv_release" not in [
        s["name"] for s in doc["steps"] if s["result"] == "completed"
    ]
    assert [s["type"] for s in doc["steps"]] == ["uv_release"]  # the lift never started
    samples = sim.store.samples(doc["run_id"])
    zs = [s.z_um for s in samples if s.z_um is not None]
    assert zs and max(zs) - min(zs) < 1.0, "the stage moved"
    state = sim.plant.state
    assert state.tips_attached and not state.leads_torn and not state.uv_shutter_open
    # The dose stopped growing when the lamp went out, short of the step's 1500 mJ/cm².
    doses = [s.uv_dose_mj_cm2 for s in samples if s.uv_dose_mj_cm2 is not None]
    assert 0 < max(doses) < 1500.0
    check = next(c for c in doc["conformance"] if c["check"] == "release_dose@uv_release")
    assert not check["ok"]


def test_uv_failure_exits_1_through_the_cli(tmp_path: Path) -> None:
    faults = tmp_path / "uv.toml"
    faults.write_text(_fault("uv_release", "uv", "fail", 5.0))
    code = main(
        [
            "run", str(UV), "--sim", "--speed", "100", "--faults", str(faults),
            "--data-dir", str(tmp_path / "data"),
        ]
    )  # fmt: skip
    assert code == 1


async def test_a_tip_not_released_is_caught_by_force_before_the_leads_tear(
    tmp_path: Path,
) -> None:
    # The recipe gives the datasheet's dose (valid), but this batch of adhesive needs far
    # more: 1500 mJ/cm² leaves about half of the layer bonded.
    params = replace(PlantParams(), adhesive_d0_mj_cm2=2000.0)
    doc, sim = await run_recipe(_release_and_lift_only(), tmp_path, params=params)
    assert doc["result"] == "aborted"
    assert "force" in doc["reason"] and "1 N" in doc["reason"], doc["reason"]
    state = sim.plant.state
    assert state.tips_attached, "the tips must still be on the support (not torn off)"
    assert state.torn_fraction == 0.0 and not state.leads_torn
    assert not state.z_moving
    assert state.z_um < 150.0  # stopped early in the 500 µm lift
    samples = sim.store.samples(doc["run_id"])
    forces = [s.z_force_n for s in samples if s.z_force_n is not None]
    # Stopped within a control period of the limit: the force never got near a tear (3 N).
    assert 1.0 < max(forces) < 1.5
    lift = next(c for c in doc["conformance"] if c["check"] == "lift_displacement")
    assert not lift["ok"]


async def test_a_stage_that_stops_answering_ends_the_run_in_the_safe_state(
    tmp_path: Path,
) -> None:
    scenario = parse_scenario(_fault("lead_lift", "zstage", "no_response", 2.0))
    doc, sim = await run_recipe(_release_and_lift_only(), tmp_path, scenario=scenario)
    assert doc["result"] == "aborted"
    assert "zstage" in doc["reason"] or "Z stage" in doc["reason"], doc["reason"]
    state = sim.plant.state
    # Safe state: no UV, no lamps, and the stage at rest (the run waited for the move it
    # could not stop); both vacuum holds kept (ADR 0057).
    assert not state.uv_shutter_open and max(state.lamp_output_pct) == 0.0
    assert not state.z_moving
    assert state.chuck_vacuum_held and state.support_vacuum_held
    codes = [a["code"] for a in doc["alarms"]]
    assert "zstage_unstoppable" in codes
    assert not state.leads_torn


async def test_a_stalled_stage_trips_on_following_error(tmp_path: Path) -> None:
    scenario = parse_scenario(_fault("lead_lift", "zstage", "stall", 3.0))
    doc, sim = await run_recipe(_release_and_lift_only(), tmp_path, scenario=scenario)
    assert doc["result"] == "aborted"
    assert "z_following_error" in doc["reason"] or "z_stall" in doc["reason"], doc["reason"]
    assert not sim.plant.state.leads_torn


async def test_a_uv_source_silent_mid_exposure_is_closed_by_its_interlock_line(
    tmp_path: Path,
) -> None:
    # The serial link is gone with the shutter open: CLS cannot reach the source. The
    # coupler's uv_enable line is the other way to close it (ADR 0115).
    scenario = parse_scenario(_fault("uv_release", "uv", "no_response", 1.0))
    doc, sim = await run_recipe(_release_and_lift_only(), tmp_path, scenario=scenario)
    assert doc["result"] == "aborted"
    assert "uv" in doc["reason"].lower(), doc["reason"]
    state = sim.plant.state
    assert not state.uv_shutter_open and not state.outputs["uv_enable"]
    # Cut short: the exposure did not run on, unseen, to (or past) the recipe's dose.
    assert 0.0 < state.uv_dose_mj_cm2 < 1500.0


async def test_a_dispenser_silent_mid_shot_is_waited_for_not_left_dispensing(
    tmp_path: Path,
) -> None:
    # The stop cannot reach it; its timed shot ends by itself at its set time. The run must
    # not end (and invite the operator in) while encapsulant is still being pushed out.
    scenario = parse_scenario(_fault("encapsulate", "dispenser", "no_response", 0.5))
    doc, sim = await run_recipe(UV, tmp_path, scenario=scenario)
    assert doc["result"] == "aborted"
    assert "dispenser" in doc["reason"], doc["reason"]
    codes = [a["code"] for a in doc["alarms"]]
    assert "dispenser_unstoppable" in codes, codes
    assert not sim.plant.state.dispensing


async def test_a_stage_drive_fault_with_the_support_lifted_stops_the_run(tmp_path: Path) -> None:
    # After the lift the stage holds the support and the bent leads: a faulted drive is not a
    # warning any more (it is one in a step that does not use the stage).
    scenario = parse_scenario(_fault("encapsulate", "zstage", "fail", 0.5))
    doc, _ = await run_recipe(UV, tmp_path, scenario=scenario)
    assert doc["result"] == "aborted"
    assert "Z stage" in doc["reason"], doc["reason"]


async def test_a_stage_stalled_before_homing_stops_the_run_naming_the_stall(
    tmp_path: Path,
) -> None:
    # Jammed before the lift: homing never ends. The run must stop on the stall within a
    # second or two, not hold the step until its timeout with a reason that names nothing.
    scenario = parse_scenario(_fault("uv_release", "zstage", "stall", 1.0))
    doc, sim = await run_recipe(_release_and_lift_only(), tmp_path, scenario=scenario)
    assert doc["result"] == "aborted"
    assert "stalled while homing" in doc["reason"], doc["reason"]
    assert any(a["code"] == "z_stall" for a in doc["alarms"]), doc["alarms"]
    lift = next(s for s in doc["steps"] if s["name"] == "lead_lift")
    assert lift["duration_s"] < 5.0, lift
    assert not sim.plant.state.leads_torn


async def test_support_vacuum_lost_after_the_lift_trips(tmp_path: Path) -> None:
    scenario = parse_scenario(_fault("encapsulate", "support_vacuum", "fail", 1.0))
    doc, sim = await run_recipe(UV, tmp_path, scenario=scenario)
    assert doc["result"] == "aborted"
    assert "vacuum" in doc["reason"] and "support" in doc["reason"], doc["reason"]
    assert not sim.plant.state.dispensing


@pytest.mark.parametrize("recipe", [UV], ids=lambda p: p.stem)
async def test_trace_and_export_carry_z_force_uv_dose_and_conversion(
    recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc, sim = await run_recipe(recipe, tmp_path)
    assert doc["result"] == "completed", doc["reason"]
    m = doc["metrics"]
    assert m["max_force_n"] is not None and 0.1 < m["max_force_n"] < 1.0
    assert m["uv_dose_at_lift_mj_cm2"] is not None and m["uv_dose_at_lift_mj_cm2"] >= 1500.0
    assert m["cure_conversion"] is not None and m["cure_conversion"] >= 0.9
    # The plant agrees: tips released, nothing torn, the encapsulant cured at least as far
    # as the daemon's (conservative) estimate says.
    state = sim.plant.state
    assert state.tips_released and not state.leads_torn
    assert state.cure_conversion >= m["cure_conversion"]
    sim.store.close()
    capsys.readouterr()  # the run's own log lines
    assert main(["export", doc["run_id"], "--data-dir", str(tmp_path)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    header = list(rows[0])
    for col in ("z_um", "z_force_n", "uv_mw_cm2", "uv_dose_mj_cm2", "cure_conversion"):
        assert col in header
    # Irradiance while exposing, the dose reaching the step's, the lift in Z, conversion.
    assert max(float(r["uv_mw_cm2"] or 0) for r in rows) == pytest.approx(100.0)
    assert max(float(r["uv_dose_mj_cm2"] or 0) for r in rows) >= 3000.0
    assert max(float(r["z_um"] or 0) for r in rows) == pytest.approx(500.0, abs=5.0)
    assert max(float(r["z_force_n"] or 0) for r in rows) > 0.1
    assert max(float(r["cure_conversion"] or 0) for r in rows) >= 0.9
    # The run report plots them.
    out = tmp_path / "report"
    assert main(["report", doc["run_id"], "--data-dir", str(tmp_path), "--out", str(out)]) == 0
    html = next(out.glob("*.html")).read_text()
    for chart in ("chart-z", "chart-force", "chart-uv", "chart-cure"):
        assert f'id="{chart}"' in html, chart


async def test_a_hold_is_refused_while_the_leads_are_being_lifted(tmp_path: Path) -> None:
    refused: list[str] = []

    def on_event(sim: SimRun, event: str, payload: dict[str, Any]) -> None:
        if event == "StepStarted" and payload["name"] == "lead_lift":
            try:
                sim.executor.request_hold()
            except CommandRefused as exc:
                refused.append(str(exc))

    doc, _ = await run_recipe(_release_and_lift_only(), tmp_path, on_event=on_event)
    assert doc["result"] == "completed", doc["reason"]
    assert refused and "lead_lift" in refused[0]
