"""Predict a recipe on the machine's twin (``bonderd predict``, the MES ``predict`` command).

The twin is the rig in simulation, built from the machine's own configuration: its
identified thermal model (``[thermal]``, from ``bonderd tune``; the shipped simulation model
when it has none), its equipment limits and interlock limits. The recipe runs in virtual
time through the same executor, interlocks and conformance as a run on the machine, so a
predicted failure names the check, step or interlock the run itself would fail on.

With seeds, it runs again on the machine disturbed within its specification
(``drivers/sim/plant/disturb.py`` by way of the rig's simulation branch) and sums up how
each check spreads: worst margin, mean, Cpk, the share of seeds that pass it.

The document (``docs/predict.md``) holds nothing of the wall clock or the run ids: the same
recipe, configuration and seeds give the same document, on any host.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import multiprocessing
import os
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from daemon import logs
from daemon.config import Settings
from daemon.judge.margins import bounds
from daemon.recipe.load import LoadedRecipe, parse_recipe
from daemon.run import rig_sim
from daemon.run.rig import assemble
from daemon.store.records import RunStore
from daemon.thermal.source import chuck_model_of, model_of, shipped_sim_chuck, shipped_sim_model
from drivers.clock import VirtualClock

SCHEMA_VERSION: Final = 1
LOT_ID: Final = "PREDICTION"
OPERATOR: Final = "bonderd predict"
# Writes the report of the nominal twin run from its store, before the store is thrown away
# (the report wing is the caller's: daemon/app/predict_cli.py).
Reporter = Callable[[RunStore, str], Path]

MAX_SEEDS: Final = 1000  # a thousand bonds of simulation is ~15 min of CPU: plenty
_DIGITS: Final = 6  # rounding of the document's numbers: stable text, far below any limit


@dataclass(frozen=True)
class TwinRun:
    doc: dict[str, Any]
    violations: list[str]  # plant invariants broken (a fault of the twin, never expected)
    report: Path | None


def twin_params(settings: Settings) -> rig_sim.PlantParams | None:
    """The twin's plant: nominal, or calibrated to the machine's ``[thermal]`` model and its
    ``[chuck_model]`` by their ratios to the same identification on the nominal plant
    (drivers/sim/plant/calibrate.py)."""
    params: rig_sim.PlantParams | None = None
    if settings.thermal is not None:
        identified = dataclasses.asdict(model_of(settings.thermal))
        reference = dataclasses.asdict(shipped_sim_model())
        if identified != reference:
            params = rig_sim.calibrated(None, identified, reference)
    if settings.chuck_model is not None:
        chuck = chuck_model_of(settings.chuck_model)
        chuck_ref = shipped_sim_chuck()
        if chuck != chuck_ref:
            params = rig_sim.chuck_calibrated(params, chuck, chuck_ref)
    return params


def _round(v: Any) -> Any:
    return round(v, _DIGITS) if isinstance(v, float) else v


async def _twin_run(
    loaded: LoadedRecipe,
    settings: Settings,
    data_dir: Path,
    disturbance: rig_sim.Disturbance | None,
) -> tuple[dict[str, Any], list[str]]:
    params = twin_params(settings)
    if disturbance is not None:
        params = rig_sim.disturbed(params, disturbance)
    rig = assemble(
        settings.model_copy(update={"data_dir": data_dir}),
        sim=True,
        seed=disturbance.seed if disturbance is not None else 0,
        clock=VirtualClock(),
        params=params,
        thermal_model="configured",
        # The referee of the plant's true state costs a third of the run; the interlocks
        # still judge every snapshot, as on the machine.
        check_invariants=False,
    )
    rig.prepare(loaded.recipe)
    try:
        async with rig.running():
            doc = await rig.executor.run(loaded, lot_id=LOT_ID, operator=OPERATOR)
    finally:
        rig.close()
    return doc, rig.violations(doc)


def twin_run(
    loaded: LoadedRecipe,
    settings: Settings,
    *,
    disturbance: rig_sim.Disturbance | None = None,
    reporter: Reporter | None = None,
) -> TwinRun:
    """One run of ``loaded`` on the twin, in a store of its own that is thrown away (a
    prediction is not a run of the machine and never enters its records)."""
    with tempfile.TemporaryDirectory(prefix="bonderd-predict-") as tmp:
        doc, violations = asyncio.run(_twin_run(loaded, settings, Path(tmp), disturbance))
        report = None
        if reporter is not None:
            with RunStore(Path(tmp)) as store:
                report = reporter(store, doc["run_id"])
    return TwinRun(doc, violations, report)


def _verdict(doc: dict[str, Any], violations: Sequence[str]) -> str:
    return "pass" if doc["result"] == "completed" and not violations else "fail"


def _checks(doc: dict[str, Any], loaded: LoadedRecipe) -> list[dict[str, Any]]:
    out = []
    for c in doc["conformance"]:
        b = bounds(c, loaded.recipe)
        value = c["value"] if isinstance(c["value"], int | float) else None
        margin = b.margin(value) if b is not None else None
        out.append(
            {
                "check": c["check"],
                "ok": c["ok"],
                "value": _round(c["value"]),
                "limit": c["limit"],
                "unit": b.unit if b is not None else "",
                "lo": b.lo if b is not None else None,
                "hi": b.hi if b is not None else None,
                "margin": _round(margin),
                "margin_fraction": _round(b.fraction(margin) if b is not None else None),
                "detail": c["detail"],
            }
        )
    return out


def _interlocks(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "code": a.get("code"),
            "severity": a.get("severity"),
            "message": a.get("message"),
            "t_s": _round(a.get("t_s")),
        }
        for a in doc.get("alarms", [])
    ]


def _cycle_s(doc: dict[str, Any]) -> float:
    cycle = doc.get("metrics", {}).get("cycle_time_s")
    if isinstance(cycle, int | float):
        return float(cycle)
    return float(sum(s.get("duration_s") or 0.0 for s in doc["steps"]))


def _summary(loaded: LoadedRecipe, run: TwinRun) -> dict[str, Any]:
    doc = run.doc
    checks = _checks(doc, loaded)
    fractions = [c["margin_fraction"] for c in checks if c["margin_fraction"] is not None]
    return {
        "verdict": _verdict(doc, run.violations),
        "result": doc["result"],
        "reason": doc["reason"],
        "failed_checks": [c["check"] for c in checks if not c["ok"]],
        "min_margin_fraction": min(fractions) if fractions else None,
        "cycle_s": _round(_cycle_s(doc)),
        "steps": [
            {
                "name": s["name"],
                "type": s["type"],
                "result": s["result"],
                "duration_s": _round(s.get("duration_s")),
            }
            for s in doc["steps"]
        ],
        "checks": checks,
        "interlocks": _interlocks(doc),
        "invariant_violations": list(run.violations),
    }


def _seed_stats(loaded: LoadedRecipe, runs: Sequence[tuple[int, TwinRun]]) -> dict[str, Any]:
    per_run = [(seed, _summary(loaded, run), run) for seed, run in runs]
    names: list[str] = []
    for _, s, _ in per_run:
        names.extend(c["check"] for c in s["checks"] if c["check"] not in names)
    checks = []
    for name in names:
        entries = [c for _, s, _ in per_run for c in s["checks"] if c["check"] == name]
        values = [float(c["value"]) for c in entries if isinstance(c["value"], int | float)]
        margins = [c["margin"] for c in entries if c["margin"] is not None]
        b = bounds(entries[0], loaded.recipe)
        checks.append(
            {
                "check": name,
                "unit": entries[0]["unit"],
                "worst_margin": _round(min(margins)) if margins else None,
                "mean": _round(statistics.fmean(values)) if values else None,
                "std": _round(statistics.stdev(values)) if len(values) > 1 else None,
                "cpk": _round(b.cpk(values)) if b is not None else None,
                # A check absent from a run (it aborted before it) did not pass there.
                "pass_share": _round(sum(c["ok"] for c in entries) / len(per_run)),
            }
        )
    passed = sum(s["verdict"] == "pass" for _, s, _ in per_run)
    cycles = [s["cycle_s"] for _, s, _ in per_run]
    return {
        "n": len(per_run),
        "passed": passed,
        "yield": _round(passed / len(per_run)),
        "cycle_s": {"mean": _round(statistics.fmean(cycles)), "max": max(cycles)},
        "checks": checks,
        "runs": [
            {
                "seed": seed,
                "verdict": s["verdict"],
                "failed_checks": s["failed_checks"],
                "interlocks": [i["code"] for i in s["interlocks"]],
                "disturbance": rig_sim.disturbance(seed).as_dict(),
            }
            for seed, s, _ in per_run
        ],
    }


def _seed_run(text: str, source: str, settings: Settings, seed: int) -> TwinRun:
    loaded = parse_recipe(text.encode("utf-8"), source, settings.limits)
    return twin_run(loaded, settings, disturbance=rig_sim.disturbance(seed))


def _quiet_worker() -> None:
    # A fresh interpreter logs every step at INFO; a prediction's runs are not the machine's.
    logs.configure("WARNING")


def _seed_runs(
    loaded: LoadedRecipe, source: str, settings: Settings, seeds: int, workers: int
) -> list[tuple[int, TwinRun]]:
    numbers = list(range(1, seeds + 1))
    if workers <= 1 or seeds <= 1:
        return [(n, _seed_run(loaded.text, source, settings, n)) for n in numbers]
    # Fresh interpreters (spawn): a fork of a process with an event loop and threads, such
    # as the daemon, would inherit their locks mid-use.
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_quiet_worker
    ) as pool:
        futures = [pool.submit(_seed_run, loaded.text, source, settings, n) for n in numbers]
        return [(n, f.result()) for n, f in zip(numbers, futures, strict=True)]


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


def predict(
    loaded: LoadedRecipe,
    settings: Settings,
    *,
    source: str,
    seeds: int = 0,
    workers: int = 1,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """The prediction of one recipe: the nominal twin, and over ``seeds`` disturbed ones.

    ``source`` names the recipe in the document (its file, or the MES request). ``workers``
    > 1 runs the seeds in that many worker processes.
    """
    if not 0 <= seeds <= MAX_SEEDS:
        raise ValueError(f"seeds: must be 0..{MAX_SEEDS}, got {seeds}")
    nominal = twin_run(loaded, settings, reporter=reporter)
    out: dict[str, Any] = {
        "source": source,
        "recipe": {
            "name": loaded.recipe.name,
            "kind": loaded.recipe.kind,
            "sha256": loaded.sha256,
        },
        **_summary(loaded, nominal),
        "seeds": _seed_stats(loaded, _seed_runs(loaded, source, settings, seeds, workers))
        if seeds
        else None,
    }
    if nominal.report is not None:
        out["report"] = str(nominal.report)
    return out


def _plant_of(settings: Settings) -> str:
    if twin_params(settings) is None:
        return "nominal"
    parts = []
    thermal, chuck = settings.thermal, settings.chuck_model
    if thermal is not None and dataclasses.asdict(model_of(thermal)) != dataclasses.asdict(
        shipped_sim_model()
    ):
        parts.append("[thermal]")
    if chuck is not None and chuck_model_of(chuck) != shipped_sim_chuck():
        parts.append("[chuck_model]")
    return "calibrated to " + " and ".join(parts)


def twin_of(settings: Settings) -> dict[str, Any]:
    """What the twin is built from, for the document's reader."""
    thermal = settings.thermal
    return {
        "equipment_id": settings.equipment_id,
        "thermal_model": "configured" if thermal is not None else "shipped simulation model",
        "plant": _plant_of(settings),
        "identified_at": thermal.identified_at if thermal is not None else None,
    }


def document(settings: Settings, predictions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The whole answer: every recipe's prediction and the verdict over all of them."""
    verdict = "pass" if all(p["verdict"] == "pass" for p in predictions) else "fail"
    return {
        "schema_version": SCHEMA_VERSION,
        "prediction": True,
        "twin": twin_of(settings),
        "verdict": verdict,
        "recipes": list(predictions),
    }
