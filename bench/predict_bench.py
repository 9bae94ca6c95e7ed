"""``predict_wall_s``: how long ``bonderd predict`` takes, for one bond and over 20 seeds.

Wall time of the prediction as the command line makes it (daemon/run/predict.py): the twin
assembled, the recipe run in virtual time, judged and summed up; with seeds, the worker
processes started (spawn) and their runs. Imports are not counted (the command pays them
once, whatever it predicts). Issue 18's goals: ≤ 1 s for one SAC305 bond, ≤ 15 s for
``--seeds 20`` on the 2-core development machine.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from daemon.config import Settings
from daemon.recipe.load import load_recipe_file
from daemon.run.predict import default_workers, predict
from daemon.run.virtual import REPO

SAC305 = REPO / "recipes" / "sac305-polyimide.toml"
SEEDS = 20


def _timed(path: Path, seeds: int) -> tuple[float, dict[str, Any]]:
    settings = Settings.model_construct()  # the shipped simulation model, default limits
    loaded = load_recipe_file(path, settings.limits)
    t0 = time.perf_counter()
    doc = predict(loaded, settings, source=str(path), seeds=seeds, workers=default_workers())
    return time.perf_counter() - t0, doc


def measure(repeats: int = 3) -> dict[str, Any]:
    """The fastest of ``repeats`` single predictions, and one over ``SEEDS`` seeds."""
    singles = [_timed(SAC305, 0)[0] for _ in range(repeats)]
    wall_seeds, doc = _timed(SAC305, SEEDS)
    assert doc["verdict"] == "pass" and doc["seeds"]["n"] == SEEDS, doc["reason"]
    return {
        "predict_wall_s": round(min(singles), 3),
        "predict_wall_runs_s": [round(s, 3) for s in singles],
        "predict_seeds20_wall_s": round(wall_seeds, 2),
        "predict_workers": default_workers(),
        "predict_seeds20_yield": doc["seeds"]["yield"],
    }
