"""``predict_error``: how well the twin predicts a machine that is not the nominal one.

The "unit under test" (``bench/data/unit-under-test.toml``) is a simulated plant 10–20 % off
the nominal one. Tuned: ``bonderd tune``'s identification run on the unit gives its
``[thermal]`` model; the unit runs each bond recipe with it, and the twin predicts with it
(its plant calibrated to the model, drivers/sim/plant/calibrate.py). Untuned: the unit runs
with the shipped model of the nominal plant, and the twin is the nominal one. For each, the
error of the prediction against the unit's run: peak °C, time above liquidus s, cycle %,
and every check's value. Issue 18's goals (tuned): peak ≤ 1 °C, TAL ≤ 2 s, cycle ≤ 2 %.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from daemon.config import ChuckModelSection, Settings, ThermalSection
from daemon.recipe.load import load_recipe_file, parse_recipe
from daemon.run.predict import predict
from daemon.run.rig import PlantParams
from daemon.run.virtual import BOND_RECIPES, REPO, SimRun, run_recipe
from daemon.thermal.chuck_fit import CHUCK_SETPOINT_C, ChuckTap, identify_chuck
from daemon.thermal.component_fit import identify_component
from daemon.thermal.fit import identify
from daemon.thermal.loop import ThermalModel
from daemon.thermal.source import shipped_sim_model
from daemon.thermal.tune import (
    CHUCK_STEP_INDEX,
    DEFAULT_MELT,
    EXPERIMENT_CHUCK_C,
    IdentificationLoop,
    chuck_keys,
    chuck_recipe,
    experiment_recipe,
)

UNIT = REPO / "bench" / "data" / "unit-under-test.toml"
GOALS = {"peak_c": 1.0, "tal_s": 2.0, "cycle_pct": 2.0}


class UnitError(ValueError):
    pass


def load_unit(path: Path = UNIT) -> PlantParams:
    """The unit's plant: the nominal parameters with the file's ``[plant]`` values."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UnitError(f"{path}: cannot read: {exc}") from exc
    plant = doc.get("plant")
    if not isinstance(plant, dict):
        raise UnitError(f"{path}: [plant]: missing (a table of PlantParams fields)")
    known = {f.name: f for f in dataclasses.fields(PlantParams)}
    for key, value in plant.items():
        if key not in known:
            raise UnitError(f"{path}: plant.{key}: not a PlantParams field")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UnitError(f"{path}: plant.{key}: must be a number, got {value!r}")
    try:
        return PlantParams(**{k: float(v) for k, v in plant.items()})
    except ValueError as exc:
        raise UnitError(f"{path}: plant: {exc}") from exc


def identify_unit(unit: PlantParams) -> tuple[ThermalModel, dict[str, float]]:
    """``bonderd tune --sim`` on the unit: its two runs (the chip's experiment, then the chuck
    run on the model just identified) and their fits."""
    loop = IdentificationLoop(DEFAULT_MELT)
    settings = Settings.model_construct()
    loaded = parse_recipe(
        experiment_recipe(DEFAULT_MELT, loop.duration_s()).encode(), "tune", settings.limits
    )
    with tempfile.TemporaryDirectory() as tmp:
        doc, _ = asyncio.run(
            run_recipe(
                loaded,
                Path(tmp),
                params=unit,
                thermal_model="none",
                controller_factory=lambda _model, _melt: loop,
                check_invariants=False,
            )
        )
    assert doc["result"] != "aborted" and loop.done, doc["reason"]
    model = identify(loop.record, DEFAULT_MELT)
    taps: list[ChuckTap] = []

    def on_event(sim: SimRun, event: str, payload: dict[str, Any]) -> None:
        if not taps:
            taps.append(ChuckTap(sim.monitor, CHUCK_STEP_INDEX, CHUCK_SETPOINT_C))
        taps[0].on_event(event, payload)

    chuck_run = parse_recipe(chuck_recipe(DEFAULT_MELT).encode(), "tune", settings.limits)
    with tempfile.TemporaryDirectory() as tmp:
        doc, _ = asyncio.run(
            run_recipe(
                chuck_run,
                Path(tmp),
                params=unit,
                thermal_model=model,
                check_invariants=False,
                on_event=on_event,
            )
        )
    assert doc["result"] != "aborted", doc["reason"]
    component = identify_component(loop.record, EXPERIMENT_CHUCK_C)
    return model, chuck_keys(identify_chuck(taps[0].record), component)


def _actual(path: Path, unit: PlantParams, model: ThermalModel) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        doc, _ = asyncio.run(
            run_recipe(path, Path(tmp), params=unit, thermal_model=model, check_invariants=False)
        )
    return doc


def _errors(pred: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    checks = {c["check"]: c["value"] for c in doc["conformance"]}
    per_check = {
        c["check"]: round(abs(c["value"] - checks[c["check"]]), 4)
        for c in pred["checks"]
        if isinstance(c["value"], int | float) and isinstance(checks.get(c["check"]), int | float)
    }
    metrics = doc["metrics"]
    cycle = float(metrics["cycle_time_s"])
    tal = next(c["value"] for c in pred["checks"] if c["check"] == "time_above_liquidus")
    peak = next(c["value"] for c in pred["checks"] if c["check"] == "peak_in_window")
    return {
        "peak_c": round(abs(peak - metrics["peak_c"]), 3),
        "tal_s": round(abs(tal - metrics["time_above_liquidus_s"]), 3),
        "cycle_pct": round(100.0 * abs(pred["cycle_s"] - cycle) / cycle, 3),
        "cycle_s": {"predicted": pred["cycle_s"], "actual": cycle},
        "checks": per_check,
        "verdicts": {"predicted": pred["verdict"], "actual": doc["result"]},
    }


def measure(unit_path: Path = UNIT) -> dict[str, Any]:
    unit = load_unit(unit_path)
    tuned_model, chuck = identify_unit(unit)
    shipped = shipped_sim_model()
    tuned = Settings.model_construct(
        thermal=ThermalSection(**dataclasses.asdict(tuned_model), identified_at="bench"),
        chuck_model=ChuckModelSection(**chuck, identified_at="bench"),
    )
    untuned = Settings.model_construct()
    out: dict[str, Any] = {
        "unit": str(unit_path.relative_to(REPO)),
        "tuned_model": dataclasses.asdict(tuned_model),
        "tuned_chuck": chuck,
        "recipes": {},
    }
    for path in BOND_RECIPES:
        loaded = load_recipe_file(path, untuned.limits)
        rec = {}
        for name, settings, model in (("tuned", tuned, tuned_model), ("untuned", untuned, shipped)):
            pred = predict(loaded, settings, source=str(path))
            rec[name] = _errors(pred, _actual(path, unit, model))
        out["recipes"][path.stem] = rec
    for name in ("tuned", "untuned"):
        for key in GOALS:
            out[f"predict_error_{key}_{name}"] = max(r[name][key] for r in out["recipes"].values())
    return out


if __name__ == "__main__":
    import json
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    print(json.dumps(measure(), indent=1))
