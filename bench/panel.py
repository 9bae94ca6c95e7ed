"""Uniformity of a panel of chips at the peak (docs/panel.md), on the simulated plant in
virtual time.

    .venv/bin/python -m bench.panel [RECIPE] [--seed N] [--json] [--controls equal,zones,tuned,model]

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
import bisect
import json
import logging
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import structlog

from bench.panel_gains import identify_gains, identify_model
from bench.tracking import SETTLE_S
from daemon.config import Limits
from daemon.recipe.load import load_recipe_file
from daemon.recipe.model import Cool, Panel, Reflow, VacuumFilmBondRecipe
from daemon.run.virtual import REPO, SimRun, run_recipe
from daemon.steps.vacuum_film import planned_descent_rate
from daemon.store.trace import Sample
from daemon.thermal.loop import ChipLoop, ControllerFactory, Profile, ThermalModel, chip_controller
from daemon.thermal.panel_loop import PanelLoop
from drivers.sim.plant import PanelLayout, Plant, PlantParams

PANEL_RECIPE = REPO / "recipes" / "panel-3x3-sac305.toml"
CONTROLS = {
    "equal": "equal power on every zone, chip loop on the centre site",
    "zones": "zone loop on the open-loop gain matrix (bench/panel_gains.py)",
    "tuned": "zone loop on config/sim.toml's [panel_gains] (bonderd tune --panel --sim)",
    "model": "zone loop on the open-loop site model of every site (bench/panel_gains.py)",
}
PEAK_BAND_C = 1.0  # the control site counts as holding the peak this close to the target


def zone_loop_factory(panel: Panel, *, with_model: bool = False) -> ControllerFactory:
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
    sites = identify_model(layout) if with_model else None

    def factory(model: ThermalModel | None, melt: tuple[float, float] | None) -> ChipLoop:
        assert model is not None, "the zone loop runs on the identified chip model"
        return PanelLoop(chip_controller(model, melt), gains, channels, model=sites)

    return factory


async def measure(recipe: Path, seed: int = 0, *, control: str = "equal") -> dict[str, Any]:
    loaded = load_recipe_file(recipe, Limits())
    model = loaded.recipe
    assert isinstance(model, VacuumFilmBondRecipe) and model.panel is not None
    factory = (
        zone_loop_factory(model.panel, with_model=control == "model")
        if control in ("zones", "model")
        else None
    )
    gains: Literal["shipped", "none"] = "shipped" if control == "tuned" else "none"
    reflow = next(s for s in model.steps if isinstance(s, Reflow))
    peak_target = reflow.segments[-1].to_c
    liquidus = model.materials.solder.liquidus_c
    peaks: list[float] = []
    tal: list[float] = []
    worst_spread = [0.0]
    last_t = [0.0]
    run_t0 = [0.0]
    # What a thermocouple on each site would read (lagged, no noise), against run time.
    junctions: tuple[list[float], list[list[float]]] = ([], [])

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
        junctions[0].append(plant.t - run_t0[0])
        junctions[1].append([s.tc_junction_c for s in sites])

    def on_event(sim: SimRun, name: str, payload: dict[str, Any]) -> None:
        if name == "RunStarted" and not last_t[0]:
            last_t[0] = run_t0[0] = sim.plant.t
            sim.plant.add_observer(observe)

    with tempfile.TemporaryDirectory() as tmp:
        doc, sim = await run_recipe(
            loaded,
            Path(tmp),
            seed=seed,
            on_event=on_event,
            controller_factory=factory,
            panel_gains=gains,
        )
        samples = sim.store.samples(doc["run_id"])
        sim.store.close()
    layout = sim.plant.panel.layout if sim.plant.panel is not None else None
    assert layout is not None
    rms = site_tracking_rms(samples, junctions, model, layout.reference_site)
    target_tal = profile_tal(model)
    return {
        "recipe": model.name,
        "result": doc["result"],
        "control": CONTROLS[control],
        "doc_uniformity_c": doc["metrics"].get("uniformity_c"),
        "failed_sites": [s["site"] for s in doc.get("sites", []) if not s["ok"]],
        "uniformity_c": round(worst_spread[0], 2),
        "tal_spread_s": round(max(tal) - min(tal), 2),
        "worst_site_tracking_rms_c": round(max(rms), 3),
        "worst_tal_error_vs_truth_s": round(
            max(abs(s["tal_s"] - tal[s["site"]]) for s in doc["sites"]), 2
        ),
        "worst_tal_error_vs_profile_s": round(max(abs(t - target_tal) for t in tal), 2),
        "tal_target_s": round(target_tal, 2),
        "sites": [
            {
                "site": i,
                "row": layout.row_col(i)[0],
                "col": layout.row_col(i)[1],
                "instrumented": doc["sites"][i]["instrumented"],
                "peak_c": round(peaks[i], 2),
                "tal_s": round(tal[i], 2),
                "recorded_tal_s": round(doc["sites"][i]["tal_s"], 2),
                "tracking_rms_c": round(rms[i], 3),
            }
            for i in range(layout.sites)
        ],
    }


def profile_tal(recipe: VacuumFilmBondRecipe) -> float:
    """The time the profile's setpoint spends above liquidus (bench/tracking.py's target)."""
    reflow = next(s for s in recipe.steps if isinstance(s, Reflow))
    cool = next((s for s in recipe.steps if isinstance(s, Cool)), None)
    return Profile(25.0, reflow.segments).time_above(
        recipe.materials.solder.liquidus_c,
        planned_descent_rate(cool) if cool is not None else None,
    )


def site_tracking_rms(
    samples: Sequence[Sample],
    junctions: tuple[list[float], list[list[float]]],
    recipe: VacuumFilmBondRecipe,
    control_site: int,
) -> list[float]:
    """Per site, the RMS of what a noiseless thermocouple on it reads (the plant's truth
    through the sensor's lag) minus the setpoint through the same lag: bench/tracking.py's
    yardstick for the one chip, over the same span (reflow, and cool down to its target,
    the first 0.5 s of each step left out), for every site of the panel."""
    reflow = next(s for s in recipe.steps if isinstance(s, Reflow))
    cool = next((s for s in recipe.steps if isinstance(s, Cool)), None)
    tau = PlantParams().tc_tau_chip_s
    times, temps = junctions
    n_sites = len(temps[0]) if temps else 0
    sq = [0.0] * n_sites
    n = 0
    ref: float | None = None
    last_t: float | None = None
    last_step, step_t0 = "", 0.0
    for s in samples:
        if s.step != last_step:
            last_step, step_t0 = s.step, s.t_s
        if s.setpoint_c is None:
            ref = last_t = None
            continue
        if ref is None or last_t is None:
            ref = s.setpoint_c
        else:
            ref += (s.setpoint_c - ref) * (1.0 - math.exp(-(s.t_s - last_t) / tau))
        last_t = s.t_s
        k = bisect.bisect_right(times, s.t_s + 1e-6) - 1
        if k < 0:
            continue
        sites = temps[k]
        in_span = s.step == reflow.name or (
            cool is not None and s.step == cool.name and sites[control_site] > cool.to_c
        )
        if in_span and s.t_s - step_t0 >= SETTLE_S:
            for i, t in enumerate(sites):
                sq[i] += (t - ref) ** 2
            n += 1
    return [math.sqrt(v / n) if n else math.nan for v in sq]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.panel", description=__doc__)
    parser.add_argument("recipe", nargs="?", type=Path, default=PANEL_RECIPE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--controls",
        default=",".join(CONTROLS),
        help=f"comma-separated, of {', '.join(CONTROLS)} (default all)",
    )
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    recs = [
        asyncio.run(measure(args.recipe, args.seed, control=c)) for c in args.controls.split(",")
    ]
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
    print(
        f"  worst site's tracking RMS {rec['worst_site_tracking_rms_c']} °C, worst TAL error "
        f"{rec['worst_tal_error_vs_profile_s']} s vs the profile's {rec['tal_target_s']} s, "
        f"{rec['worst_tal_error_vs_truth_s']} s recorded vs true"
    )
    for s in rec["sites"]:
        print(
            f"  site {s['site']} (r{s['row']} c{s['col']}"
            f"{'' if s['instrumented'] else ', estimated'}): peak {s['peak_c']} °C, "
            f"TAL {s['tal_s']} s (recorded {s['recorded_tal_s']} s), "
            f"tracking RMS {s['tracking_rms_c']} °C"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
