"""The run executor on the simulated machine, in virtual time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from daemon.config import Limits
from daemon.errors import CommandRefused
from daemon.recipe.load import load_recipe_file
from daemon.run.run_state import RunState
from drivers.sim.faults import parse_scenario
from tests.simrun import RECIPES, SimRun, run_recipe

SAC = next(r for r in RECIPES if r.name.startswith("sac305"))
PERIOD_S = 0.1  # the monitor's (and so the controller's) period


def _step_names(path: Path) -> list[str]:
    return [s.name for s in load_recipe_file(path, Limits()).recipe.steps]


def _assert_safe(sim: SimRun, solidus_c: float) -> None:
    state = sim.plant.state
    assert max(state.lamp_output_pct) == 0.0
    assert not state.contactor_energized
    assert not state.outputs["scr_enable"]
    assert not state.uv_shutter_open
    assert state.chip_c < solidus_c  # vented only once the joints were solid
    assert state.pressure_mbar > 850.0  # vented


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
async def test_each_shipped_recipe_completes_with_every_check_ok(
    recipe: Path, tmp_path: Path
) -> None:
    doc, sim = await run_recipe(recipe, tmp_path)
    failed = [(c["check"], c["detail"]) for c in doc["conformance"] if not c["ok"]]
    assert failed == []
    assert doc["result"] == "completed"
    assert [s["result"] for s in doc["steps"]] == ["completed"] * len(doc["steps"])
    assert sim.executor.state is RunState.IDLE
    # The record holds the same verdict and a trace at the monitor's rate (≥ 10 Hz).
    record = sim.store.get_run(doc["run_id"])
    assert record is not None and record.state == "completed"
    samples = sim.store.samples(doc["run_id"])
    span = samples[-1].t_s - samples[0].t_s
    assert len(samples) >= 10 * span
    assert {"chip", "component", "chuck"} <= set(samples[0].temps_c)
    # Lamps were only ever on while the contactor log says they were allowed to be; a lead
    # lift heats with the chuck's circulator and never lights them.
    lit = max((state for _, state in sim.lamps.power), default=0.0)
    if any(s["type"] == "reflow" for s in doc["steps"]):
        assert lit > 0
    else:
        assert lit == 0.0 and not any(on for _, on in sim.lamps.contactor)
    assert not sim.plant.state.contactor_energized


@pytest.mark.parametrize("step", _step_names(SAC))
async def test_abort_from_every_step_ends_in_the_safe_state(step: str, tmp_path: Path) -> None:
    def on_event(sim: SimRun, event: str, payload: dict[str, Any]) -> None:
        if event == "StepStarted" and payload["name"] == step:

            async def later() -> None:
                await sim.clock.sleep(0.3)
                sim.executor.abort("operator pressed abort")

            sim.events.append((0.0, "_task", {"task": asyncio.ensure_future(later())}))

    doc, sim = await run_recipe(SAC, tmp_path, on_event=on_event)
    assert doc["result"] == "aborted"
    assert doc["reason"] == "operator pressed abort"
    results = {s["name"]: s["result"] for s in doc["steps"]}
    assert results[step] == "aborted"
    assert list(results)[-1] == step  # nothing ran after the aborted step
    assert sim.executor.state is RunState.ABORTED
    _assert_safe(sim, 217.0)
    record = sim.store.get_run(doc["run_id"])
    assert record is not None and record.state == "aborted"
    sim.executor.reset()
    assert sim.executor.state is RunState.IDLE


async def test_hold_waits_for_the_step_boundary_and_resume_completes(tmp_path: Path) -> None:
    seen: list[RunState] = []

    def on_event(sim: SimRun, event: str, payload: dict[str, Any]) -> None:
        if event == "StepStarted" and payload["name"] == "purge":
            sim.executor.request_hold()
            seen.append(sim.executor.state)
        if event == "StateChanged" and payload["new"] == "held":
            seen.append(RunState.HELD)
            assert sim.executor.current_step == "purge"  # held after purge, before pump-down

            async def later() -> None:
                await sim.clock.sleep(30.0)
                sim.executor.resume()

            sim.events.append((0.0, "_task", {"task": asyncio.ensure_future(later())}))

    doc, _ = await run_recipe(SAC, tmp_path, on_event=on_event)
    assert seen == [RunState.HOLDING, RunState.HELD]
    assert doc["result"] == "completed"


async def test_hold_is_refused_during_reflow_with_a_reason(tmp_path: Path) -> None:
    refusals: list[str] = []

    def on_event(sim: SimRun, event: str, payload: dict[str, Any]) -> None:
        if event == "StepStarted" and payload["name"] in ("reflow", "cool"):
            with pytest.raises(CommandRefused) as err:
                sim.executor.request_hold()
            refusals.append(str(err.value))

    doc, _ = await run_recipe(SAC, tmp_path, on_event=on_event)
    assert len(refusals) == 2
    assert all(("refused" in r and "reflow" in r) or "cool" in r for r in refusals)
    assert doc["result"] == "completed"  # a refused hold changes nothing


async def test_thermocouple_open_in_reflow_stops_the_lamps_within_one_period(
    tmp_path: Path,
) -> None:
    scenario = parse_scenario(
        '[[fault]]\nat_step = "reflow"\nafter_s = 40.0\ndevice = "tc.chip"\nkind = "open"\n'
    )
    doc, sim = await run_recipe(SAC, tmp_path, scenario=scenario)
    assert doc["result"] == "aborted"
    assert "thermocouple 'chip'" in doc["reason"]
    t_fault = (
        next(t for t, e, p in sim.events if e == "StepStarted" and p["name"] == "reflow") + 40.0
    )
    lamps_on_after = [t for t, pct in sim.lamps.power if t > t_fault and pct > 0]
    assert lamps_on_after == [] or max(lamps_on_after) <= t_fault + PERIOD_S
    first_zero = min(t for t, pct in sim.lamps.power if t >= t_fault and pct == 0)
    assert first_zero <= t_fault + PERIOD_S + 1e-9
    off = [t for t, on in sim.lamps.contactor if t >= t_fault and not on]
    assert off and off[0] <= t_fault + PERIOD_S + 1e-9
    assert any(a["code"] == "tc_fault" for a in doc["alarms"])
    steps = {s["name"]: s["result"] for s in doc["steps"]}
    assert steps["reflow"] in ("aborted", "failed")
    _assert_safe(sim, 217.0)


@pytest.mark.parametrize(
    ("device", "kind", "reason"),
    [("dio", "estop", "E-stop"), ("dio", "door_open", "door")],
)
async def test_estop_and_door_during_reflow_abort_the_run(
    device: str, kind: str, reason: str, tmp_path: Path
) -> None:
    scenario = parse_scenario(
        f'[[fault]]\nat_step = "reflow"\nafter_s = 20.0\ndevice = "{device}"\nkind = "{kind}"\n'
    )
    doc, sim = await run_recipe(SAC, tmp_path, scenario=scenario)
    assert doc["result"] == "aborted"
    assert reason in doc["reason"]
    state = sim.plant.state
    assert max(state.lamp_output_pct) == 0.0 and not state.contactor_energized


async def test_a_failed_purge_names_the_oxygen_it_found(tmp_path: Path) -> None:
    scenario = parse_scenario(
        '[[fault]]\nat_step = "purge"\nafter_s = 0.0\ndevice = "chamber"\nkind = "leak"\nvalue = 50.0\n'
    )
    doc, sim = await run_recipe(SAC, tmp_path, scenario=scenario)
    assert doc["result"] == "aborted"
    assert "purge" in doc["reason"] or "O2" in doc["reason"]
    assert sim.executor.state is RunState.ABORTED
