"""Tracking figures of the chip loop on one bond recipe, on the simulated plant (virtual time).

    .venv/bin/python -m bench.tracking [RECIPE ...] [--seed N]

Runs the recipe twice through the same executor, interlocks and plant: once with the
daemon's controller (the model config/sim.toml carries), once with the baseline plain PID
(bench/baseline_pid.py), and compares both to the recipe's profile (docs/thermal-control.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import pathlib
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import structlog

from bench.baseline_pid import baseline_factory
from daemon.config import Limits
from daemon.recipe.load import load_recipe_file
from daemon.recipe.model import Cool, Reflow
from daemon.run.virtual import BOND_RECIPES, run_recipe
from daemon.steps.vacuum_film import planned_descent_rate
from daemon.store.trace import Sample
from daemon.thermal.loop import ControllerFactory, Profile
from drivers.sim.plant import PlantParams

# The first half second after a step starts is the thermocouple catching up with a hand-over
# (cool starts from the hold the reading still trails); it is left out of the RMS.
SETTLE_S = 0.5


def _quiet() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))


async def _run(
    recipe: pathlib.Path, seed: int, factory: ControllerFactory | None
) -> tuple[dict[str, Any], list[Sample], float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        doc, sim = await run_recipe(
            recipe, pathlib.Path(tmp), seed=seed, controller_factory=factory
        )
        wall = time.perf_counter() - t0
        samples = sim.store.samples(doc["run_id"])
        sim.store.close()
        return doc, samples, sim.clock.now(), wall


def _figures(
    doc: dict[str, Any], samples: Sequence[Sample], recipe: pathlib.Path
) -> dict[str, float | None]:
    """rms, overshoot, peak of the chip thermocouple against the lag-seen setpoint."""

    r = load_recipe_file(recipe, Limits()).recipe
    reflow = next(s for s in r.steps if isinstance(s, Reflow))
    cool = next((s for s in r.steps if isinstance(s, Cool)), None)
    tau = PlantParams().tc_tau_chip_s  # the sensor's true lag: the same yardstick for both loops
    ref: float | None = None
    last_t: float | None = None
    last_step = ""
    step_t0 = 0.0
    sq, n, over, peak = 0.0, 0, 0.0, -math.inf
    prev_sp: float | None = None
    for s in samples:
        chip = s.temps_c.get(reflow.control_tc)
        if s.step != last_step:
            last_step, step_t0 = s.step, s.t_s
        if s.setpoint_c is None or chip is None:
            ref, last_t, prev_sp = None, None, None
            continue
        if ref is None or last_t is None:
            ref = s.setpoint_c
        else:
            ref += (s.setpoint_c - ref) * (1.0 - math.exp(-(s.t_s - last_t) / tau))
        last_t = s.t_s
        in_span = s.step == reflow.name or (
            cool is not None and s.step == cool.name and chip > cool.to_c
        )
        if s.step == reflow.name:
            peak = max(peak, chip)
            if prev_sp is not None and s.setpoint_c == prev_sp:
                over = max(over, chip - ref)
        prev_sp = s.setpoint_c
        if in_span and s.t_s - step_t0 >= SETTLE_S:
            sq += (chip - ref) ** 2
            n += 1
    top = max(seg.to_c for seg in reflow.segments)
    liquidus = r.materials.solder.liquidus_c
    target = Profile(25.0, reflow.segments).time_above(
        liquidus, planned_descent_rate(cool) if cool is not None else None
    )
    tal = doc["metrics"].get("time_above_liquidus_s")
    return {
        "rms": math.sqrt(sq / n) if n else None,
        "overshoot": over,
        "peak": peak if math.isfinite(peak) else None,
        "peak_error": peak - top if math.isfinite(peak) else None,
        "tal": tal,
        "tal_target": target,
        "tal_error": None if tal is None else tal - target,
    }


def measure(recipe: pathlib.Path, *, seed: int = 0) -> dict[str, float | str | None]:
    """Figures for one bond recipe on the simulated plant (virtual time):
    tracking_rms_c, overshoot_c, tal_error_s, peak_error_c, baseline_pid_rms_c,
    baseline_pid_overshoot_c, tal_s, tal_target_s, peak_c, cycle_time_s, sim_time_s, wall_s.

    - ``tracking_rms_c``: RMS of the chip thermocouple minus the setpoint as that
      thermocouple sees it (the setpoint through the sensor's 0.3 s first-order lag, i.e. the
      reading of a chip exactly on the profile), over the reflow step (ramps, soak, peak hold)
      and the cool ramp down to its target, leaving out the first 0.5 s of each step.
    - ``overshoot_c``: the largest excursion of the reading above that reference while the
      setpoint holds (soak and peak) — what a ramp carries past its target.
    - ``peak_c`` / ``peak_error_c``: the hottest reading in reflow, and minus the profile's peak.
    - ``tal_s``: time at or above liquidus as the run's conformance metric measures it;
      ``tal_target_s``: the time the profile's setpoint spends above liquidus (reflow ramps and
      holds, then down at the rate the cool step plans, ``planned_descent_rate``); ``tal_error_s`` = the difference.
    - ``baseline_*``: the same for the relay-autotuned plain PID (bench/baseline_pid.py).
    - ``cycle_time_s``: the run's cycle time; ``sim_time_s`` / ``wall_s``: virtual and wall
      seconds of the controller's run.
    """

    _quiet()
    doc, samples, sim_t, wall = asyncio.run(_run(recipe, seed, None))
    mine = _figures(doc, samples, recipe)
    if doc["result"] != "completed":
        # The figures of a failed run are still figures; say so where they are read.
        structlog.get_logger(__name__).error("tracking_run_failed", reason=doc["reason"])
    base_doc, base_samples, _, _ = asyncio.run(_run(recipe, seed, baseline_factory(seed=seed)))
    base = _figures(base_doc, base_samples, recipe)
    return {
        "tracking_rms_c": mine["rms"],
        "overshoot_c": mine["overshoot"],
        "tal_error_s": mine["tal_error"],
        "peak_error_c": mine["peak_error"],
        "baseline_pid_rms_c": base["rms"],
        "baseline_pid_overshoot_c": base["overshoot"],
        "tal_s": mine["tal"],
        "tal_target_s": mine["tal_target"],
        "peak_c": mine["peak"],
        "cycle_time_s": doc["metrics"].get("cycle_time_s"),
        "sim_time_s": sim_t,
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Only recipes with a reflow have a profile to track: the bond recipes by default.
    ap.add_argument("recipes", nargs="*", type=pathlib.Path, default=BOND_RECIPES)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for recipe in args.recipes:
        print(json.dumps({"recipe": recipe.stem, **measure(recipe, seed=args.seed)}))


if __name__ == "__main__":
    main()
