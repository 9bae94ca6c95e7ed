"""Uniformity of a panel of chips at the peak (docs/panel.md), on the simulated plant in
virtual time.

    .venv/bin/python -m bench.panel [RECIPE] [--seed N] [--json]

Runs the panel recipe (default ``recipes/panel-3x3-sac305.toml``) through the
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

from bench.panel_gains import identify_gains
from daemon.config import Limits
from daemon.recipe.load import load_recipe_file
from daemon.recipe.model import Panel, Reflow, VacuumFilmBondRecipe
from daemon.run.virtual import REPO, SimRun, run_recipe
from daemon.thermal.loop import ChipLoop, ControllerFactory, ThermalModel, chip_controller
from daemon.thermal.panel_loop import PanelLoop
from drivers.sim.plant import PanelLayout, Plant

PANEL_RECIPE = REPO / "recipes" / "panel-3x3-sac305.toml"
PEAK_BAND_C = 1.0  # the control site counts as holding the peak this close to the target


def zone_loop_factory(panel: Panel) -> ControllerFactory:
    """The zone loop on the gain matrix identified by stepping each zone (bench/panel_gains.py)."""
    layout = PanelLayout(
        rows=panel.rows,
        cols=panel.cols,
        pitch_mm=panel.pitch_mm,
        chip_mm=panel.chip_mm,
        solder_mg=tuple(panel.solder_mg or ()),
        instrumented=panel.instrumented_sites,
    )
    gains, channels = identify_gains(layout)

    def factory(model: ThermalModel | None, melt: tuple[float, float] | None) -> ChipLoop:
        assert model is not None, "the zone loop runs on the identified chip model"
        return PanelLoop(chip_controller(model, melt), gains, channels)

    return factory


async def measure(recipe: Path, seed: int = 0, *, control: str = "equal") -> dict[str, Any]:
    loaded = load_recipe_file(recipe, Limits())
    model = loaded.recipe
    assert isinstance(model, VacuumFilmBondRecipe) and model.panel is not None
    factory = zone_loop_factory(model.panel) if control == "zones" else None
    reflow = next(s for s in model.steps if isinstance(s, Reflow))
    peak_target = reflow.segments[-1].to_c
    liquidus = model.materials.solder.liquidus_c
    peaks: list[float] = []
    tal: list[float] = []
    worst_spread = [0.0]
    last_t = [0.0]

    def observe(plant: Plant) -> None:
        sites = plant.sites_integrated()
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
        doc, sim = await run_recipe(
            loaded,
            Path(tmp),
            seed=seed,
            on_event=on_event,
            controller_factory=factory,
            panel_gains="none",  # equal power unless the zone loop is the factory's
        )
        sim.store.close()
    layout = sim.plant.panel.layout if sim.plant.panel is not None else None
    assert layout is not None
    return {
        "recipe": model.name,
        "result": doc["result"],
        "control": (
            "zone loop on the identified gain matrix, chip loop on the centre site"
            if control == "zones"
            else "equal power on every zone, chip loop on the centre site"
        ),
        "doc_uniformity_c": doc["metrics"].get("uniformity_c"),
        "failed_sites": [s["site"] for s in doc.get("sites", []) if not s["ok"]],
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
    recs = [asyncio.run(measure(args.recipe, args.seed, control=c)) for c in ("equal", "zones")]
    if args.json:
        print(json.dumps(recs, indent=2))
        return 0
    for rec in recs:
        _print(rec)
    return 0


def _print(rec: dict[str, Any]) -> None:
    print(f"{rec['recipe']}: {rec['result']}, {rec['control']}")
    print(
        f"  uniformity_c {rec['uniformity_c']} °C (the run's own, from its records: "
        f"{rec['doc_uniformity_c']:.2f} °C), tal_spread_s {rec['tal_spread_s']} s, "
        f"failed sites {rec['failed_sites'] or 'none'}"
    )
    for s in rec["sites"]:
        print(
            f"  site {s['site']} (r{s['row']} c{s['col']}): peak {s['peak_c']} °C, TAL {s['tal_s']} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
