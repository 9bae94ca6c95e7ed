"""Whole recipes on the simulated machine in virtual time: cycle time and simulation speed.

Each shipped bond recipe runs once, as the tests run it (``daemon.run.virtual``: interlocks
on, every rule judging every snapshot) but without the tests' plant-invariant referee, which
is no part of the machine or the daemon (it runs after every integration; the tests run the
same recipes with it). The cycle time is clock time from ``RunStarted`` to
``RunCompleted``; the speed-up is simulated seconds per wall second of the whole run (CPU
seconds too: on a shared machine the wall figure carries the neighbours' load).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cycle_bound import cycle_bound
from daemon.config import Limits
from daemon.recipe.load import load_recipe_file
from daemon.recipe.model import VacuumFilmBondRecipe
from daemon.run.virtual import run_recipe


async def measure_recipe(path: Path) -> dict[str, Any]:
    loaded = load_recipe_file(path, Limits())
    recipe = loaded.recipe
    assert isinstance(recipe, VacuumFilmBondRecipe)
    with tempfile.TemporaryDirectory() as d:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        doc, sim = await run_recipe(loaded, Path(d), check_invariants=False)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    started = next(t for t, e, _ in sim.events if e == "RunStarted")
    ended = next(t for t, e, _ in sim.events if e == "RunCompleted")
    simulated = sim.clock.now()
    bound = cycle_bound(recipe, sim.plant.params)
    actual = {s["name"]: float(s["duration_s"]) for s in doc["steps"]}
    steps = [
        {
            "name": b.name,
            "type": b.type,
            "actual_s": round(actual.get(b.name, float("nan")), 2),
            "bound_s": round(b.bound_s, 2),
            "lost_s": round(actual.get(b.name, float("nan")) - b.bound_s, 2),
            "model": b.model,
        }
        for b in bound.steps
    ]
    cycle = ended - started
    between = cycle - sum(actual.values())
    steps.append(
        {
            "name": "(between steps)",
            "type": "executor",
            "actual_s": round(between, 2),
            "bound_s": 0.0,
            "lost_s": round(between, 2),
            "model": "identification, records, step hand-over",
        }
    )
    return {
        "result": doc["result"],
        "reason": doc["reason"],
        "cycle_time_s": round(cycle, 2),
        "cycle_time_lower_bound_s": round(bound.total_s, 2),
        "cycle_time_ratio": round(cycle / bound.total_s, 3),
        "steps": steps,
        "sim_speedup": round(simulated / wall, 1),
        "sim_speedup_cpu": round(simulated / cpu, 1),
        "simulated_s": round(simulated, 2),
        "wall_s": round(wall, 3),
    }
