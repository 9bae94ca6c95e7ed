"""Interlock reaction per fault kind, in-process, on the simulated machine (virtual time).

Each fault is injected during reflow, with the lamps on, at instants spread over one control
period. Three intervals, per fault kind (issue #5):

- detection: fault fired → the first snapshot on which the interlocks (or the step) act on
  it. It holds the wait for the next snapshot (up to one period) and the rule's own
  detection window (a stuck reading must stay identical 2 s, no heating needs 3 s of full
  power): a property of the rule, not of the reaction.
- reaction: that snapshot visible → lamp power commanded 0 %. Clock time between the two
  (whole periods, when the logic waited for more snapshots) plus the wall time the daemon
  took from publishing the snapshot to issuing the command (what the real machine would
  wait at speed 1; the virtual clock does not move while code runs).
- fired → lamps 0: detection + reaction; and fired → contactor open (the command, or the I/O
  coupler's own watchdog when the coupler itself is silent).

The run's prefix is shortened for the bench (chuck setpoint at ambient, 1 s settle, no leak
check) so the fault lands sooner; reflow, the fault and the reaction are unchanged.

    .venv/bin/python -m bench.interlock_reaction [--repeats N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from daemon.config import Limits
from daemon.recipe.load import LoadedRecipe, parse_recipe
from daemon.run.virtual import RECIPES, SimRun, run_recipe
from drivers.sim.faults import parse_scenario

FAULTS: list[tuple[str, str, float | None]] = [
    ("tc.chip", "open", None),
    ("tc.chip", "no_response", None),
    ("tc.component", "drift", 20.0),
    ("tc.chip", "stuck", None),
    ("gauge", "fail", None),
    ("chamber", "leak", 50.0),
    ("film", "tear", None),
    ("chiller", "fail", None),
    ("pump", "fail", None),
    ("lamps", "stuck_on", None),
    ("lamps", "fail", None),
    ("o2", "fail", None),
    ("dio", "estop", None),
    ("dio", "door_open", None),
    ("dio", "no_response", None),
    ("valves", "no_response", None),
]
AFTER_S = 30.0  # into reflow: lamps well on
PERIOD_S = 0.05  # the monitor's period (daemon/machine/monitor.py), over which injections spread


def bench_recipe(path: Path | None = None) -> LoadedRecipe:
    """The SAC305 recipe with a short prefix: the chuck already at its setpoint."""
    source = path or next(p for p in RECIPES if p.stem.startswith("sac305"))
    text = source.read_text()
    for old, new in (
        ("setpoint_c = 25.0", "setpoint_c = 23.0"),
        ("settle_s = 10.0", "settle_s = 1.0"),
        ("hold_s = 10.0\nmax_rise_mbar_per_min", "hold_s = 0.5\nmax_rise_mbar_per_min"),
    ):
        text = text.replace(old, new, 1)
    return parse_recipe(text.encode(), f"bench:{source.name}", Limits())


def pct(values: list[float], q: float) -> float:
    """Nearest-rank quantile."""
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


@dataclass
class _Probe:
    """What the bench watches in one run, installed when the run starts."""

    # Lamp commands: (clock t, max zone %, clock t the latest snapshot was published, wall t)
    lamp_cmds: list[tuple[float, float, float, float]] = field(default_factory=list)
    # Per lamp command: wall seconds since the latest snapshot was published.
    snap_wall: list[float] = field(default_factory=list)
    alarms: list[tuple[float, str]] = field(default_factory=list)
    dropped: list[float] = field(default_factory=list)

    def install(self, sim: SimRun) -> None:
        set_power = sim.machine.lamps.set_power
        monitor, clock = sim.monitor, sim.clock

        async def power(values: Any, timeout: float = 1.0) -> None:
            wall = time.perf_counter()
            latest = monitor.latest
            published = monitor.latest_published_t if latest is not None else math.nan
            self.lamp_cmds.append((clock.now(), max(values), published, wall))
            self.snap_wall.append(wall - monitor.latest_wall)
            await set_power(values, timeout)

        sim.machine.lamps.set_power = power  # type: ignore[method-assign,assignment]
        sim.interlocks.subscribe(
            lambda event, payload: (
                self.alarms.append((clock.now(), str(payload.get("code"))))
                if event == "AlarmRaised"
                else None
            )
        )
        sim.plant.add_observer(
            lambda plant: self.dropped.append(plant.t) if not plant.contactor_energized else None
        )


async def one(
    recipe: LoadedRecipe, device: str, kind: str, value: float | None, after: float
) -> dict[str, Any]:
    text = (
        f'[[fault]]\nat_step = "reflow"\nafter_s = {after}\ndevice = "{device}"\nkind = "{kind}"\n'
    )
    if value is not None:
        text += f"value = {value}\n"
    probe = _Probe()

    def on_event(sim: SimRun, event: str, _payload: dict[str, Any]) -> None:
        if event == "RunStarted":
            probe.install(sim)

    with tempfile.TemporaryDirectory() as d:
        doc, sim = await run_recipe(
            recipe, Path(d), scenario=parse_scenario(text), on_event=on_event
        )
    if doc["result"] == "completed":
        raise AssertionError(f"{device} {kind}: not detected (the run completed)")
    start = next(t for t, e, p in sim.events if e == "StepStarted" and p["name"] == "reflow")
    fired = start + after
    i = next(i for i, (t, power, _, _) in enumerate(probe.lamp_cmds) if t >= fired and power == 0.0)
    t_cmd, _, published_t, _ = probe.lamp_cmds[i]
    processing = probe.snap_wall[i]  # wall: snapshot published → lamps-0 command issued
    alarms = [t for t, _ in probe.alarms if t >= fired]
    # When the fault became visible: the interlocks' alarm (raised on the snapshot that
    # showed it), else (a step that failed on the fault) the publication of the snapshot the
    # lamps-0 command followed. Publication, not the snapshot's stamp: a silent device shows
    # only once its read has timed out.
    t_detect = min([*alarms, published_t])
    commanded = [t for t, on in sim.lamps.contactor if t >= fired and not on]
    opened = min(commanded or [t for t in probe.dropped if t >= fired])
    return {
        "detection_s": t_detect - fired,
        "reaction_s": (t_cmd - t_detect) + processing,
        "fired_to_lamps0_s": (t_cmd - fired) + processing,
        "fired_to_contactor_s": opened - fired,
        "reason": doc["reason"],
    }


async def measure(
    repeats: int = 3, faults: list[tuple[str, str, float | None]] | None = None
) -> dict[str, Any]:
    recipe = bench_recipe()
    per_fault: dict[str, Any] = {}
    reactions: list[float] = []
    for device, kind, value in faults or FAULTS:
        runs = [
            await one(recipe, device, kind, value, AFTER_S + PERIOD_S * i / repeats)
            for i in range(repeats)
        ]

        def col(key: str, runs: list[dict[str, Any]] = runs) -> list[float]:
            return [r[key] for r in runs]

        reactions += col("reaction_s")
        per_fault[f"{device} {kind}"] = {
            "n": repeats,
            "detection_p50_ms": round(pct(col("detection_s"), 0.5) * 1000, 2),
            "detection_max_ms": round(max(col("detection_s")) * 1000, 2),
            "reaction_p50_ms": round(pct(col("reaction_s"), 0.5) * 1000, 3),
            "reaction_p99_ms": round(pct(col("reaction_s"), 0.99) * 1000, 3),
            "fired_to_lamps0_p50_ms": round(pct(col("fired_to_lamps0_s"), 0.5) * 1000, 2),
            "fired_to_lamps0_p99_ms": round(pct(col("fired_to_lamps0_s"), 0.99) * 1000, 2),
            "fired_to_contactor_p50_ms": round(pct(col("fired_to_contactor_s"), 0.5) * 1000, 2),
            "fired_to_contactor_p99_ms": round(pct(col("fired_to_contactor_s"), 0.99) * 1000, 2),
            "reason": runs[0]["reason"],
        }
    return {
        "interlock_reaction_p50_ms": round(pct(reactions, 0.5) * 1000, 3),
        "interlock_reaction_p99_ms": round(pct(reactions, 0.99) * 1000, 3),
        "per_fault": per_fault,
    }


def print_table(result: dict[str, Any]) -> None:
    print(
        f"{'fault':24s} {'n':>2s} {'detect p50':>10s} {'max':>8s} {'react p50':>9s} "
        f"{'p99':>7s} {'fired→lamps0 p99':>16s} {'→contactor p99':>14s}"
    )
    for name, f in result["per_fault"].items():
        print(
            f"{name:24s} {f['n']:2d} {f['detection_p50_ms']:8.0f}ms {f['detection_max_ms']:6.0f}ms "
            f"{f['reaction_p50_ms']:7.2f}ms {f['reaction_p99_ms']:5.2f}ms "
            f"{f['fired_to_lamps0_p99_ms']:14.0f}ms {f['fired_to_contactor_p99_ms']:12.0f}ms"
        )
    print(
        f"reaction (visible → lamps 0): p50 {result['interlock_reaction_p50_ms']:.2f} ms, "
        f"p99 {result['interlock_reaction_p99_ms']:.2f} ms"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    res = asyncio.run(measure(args.repeats))
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_table(res)
