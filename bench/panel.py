"""Uniformity of a panel of chips at the peak (docs/panel.md), on the simulated plant in
virtual time.

    .venv/bin/python -m bench.panel [RECIPE] [--seed N] [--json]

Runs the panel recipe (default ``tests/data/recipes/panel-3x3-sac305.toml``) through the
executor, the interlocks and the plant with today's control: every lamp zone at the same
power, the chip loop on the one chip thermocouple (the centre site). Printed per site:
its peak and its time above liquidus; for the panel ``uniformity_c``, the largest spread
(max − min chip temperature over the sites) while the control site holds the peak (within
1 °C of the last reflow segment's target), and ``tal_spread_s``, the longest time above
liquidus less the shortest. The per-zone control (issue 17) is measured against this.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import structlog

from daemon.config import Limits
from daemon.recipe.load import load_recipe_file
from daemon.recipe.model import Reflow, VacuumFilmBondRecipe
from daemon.run.virtual import REPO, SimRun, run_recipe
from drivers.sim.plant import Plant

PANEL_RECIPE = REPO / "tests" / "data" / "recipes" / "panel-3x3-sac305.toml"
PEAK_BAND_C = 1.0  # the control site counts as holding the peak this close to the target


async def measure(recipe: Path, seed: int = 0) -> dict[str, Any]:
    loaded = load_recipe_file(recipe, Limits())
    model = loaded.recipe
    assert isinstance(model, VacuumFilmBondRecipe) and model.panel is not None
    reflow = next(s for s in model.steps if isinstance(s, Reflow))
    peak_target = reflow.segments[-1].to_c
    liquidus = model.materials.solder.liquidus_c
    peaks: list[float] = []
    tal: list[float] = []
    worst_spread = [0.0]
    last_t = [0.0]

    def observe(plant: Plant) -> None:
        sites = plant.sites()
        dt = plant.t - last_t[0]
        last_t[0] = plant.t
        if not peaks:
            peaks.extend([-1e9] * len(sites))
            tal.extend([0.0] * len(sites))
        temps = [s.chip_c for s in sites]
        for i, t in enumerate(temps):
            peaks[i] = max(peaks[i], t)
            if t >= liquidus:
                tal[i] += dt
        if plant.chip_c >= peak_target - PEAK_BAND_C:
            worst_spread[0] = max(worst_spread[0], max(temps) - min(temps))

    def on_event(sim: SimRun, name: str, payload: dict[str, Any]) -> None:
        if name == "RunStarted" and not last_t[0]:
            last_t[0] = sim.plant.t
            sim.plant.add_observer(observe)

    with tempfile.TemporaryDirectory() as tmp:
        doc, sim = await run_recipe(loaded, Path(tmp), seed=seed, on_event=on_event)
        sim.store.close()
    layout = sim.plant.panel.layout if sim.plant.panel is not None else None
    assert layout is not None
    return {
        "recipe": model.name,
        "result": doc["result"],
        "control": "equal power on every zone, chip loop on the centre site",
        "uniformity_c": round(worst_spread[0], 2),
        "tal_spread_s": round(max(tal) - min(tal), 2),
        "sites": [
            {
                "site": i,
                "row": layout.row_col(i)[0],
                "col": layout.row_col(i)[1],
                "peak_c": round(peaks[i], 2),
                "tal_s": round(tal[i], 2),
            }
            for i in range(layout.sites)
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.panel", description=__doc__)
    parser.add_argument("recipe", nargs="?", type=Path, default=PANEL_RECIPE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    rec = asyncio.run(measure(args.recipe, args.seed))
    if args.json:
        print(json.dumps(rec, indent=2))
        return 0
    print(f"{rec['recipe']}: {rec['result']}, {rec['control']}")
    print(f"  uniformity_c {rec['uniformity_c']} °C, tal_spread_s {rec['tal_spread_s']} s")
    for s in rec["sites"]:
        print(
            f"  site {s['site']} (r{s['row']} c{s['col']}): peak {s['peak_c']} °C, TAL {s['tal_s']} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
