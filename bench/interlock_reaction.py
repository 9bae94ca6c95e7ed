"""Interlock reaction time per fault kind, in-process, on the simulated machine (virtual time).

For each fault (injected during reflow, with the lamps on) and several injection instants
spread over one monitor period, measures in clock time:
  fault fired → first "lamps 0 %" command, and → first "contactor open" command (or, when
  the I/O coupler itself is silent, the moment its watchdog drops the contactor).
"Fired" is when the plant's state changed, so the figure includes the wait for the next
snapshot (up to one 0.1 s period) and any detection window the rule needs (a stuck reading
must stay identical 2 s; no heating needs 3 s of full power). Prints p50 / p99 per fault.

    .venv/bin/python -m bench.interlock_reaction [--repeats N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
from pathlib import Path
from typing import Any

import structlog

from drivers.sim.faults import parse_scenario
from tests.simrun import RECIPES, SimRun, run_recipe

FAULTS = [
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


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def _one(device: str, kind: str, value: float | None, after: float) -> tuple[float, float]:
    text = (
        f'[[fault]]\nat_step = "reflow"\nafter_s = {after}\ndevice = "{device}"\nkind = "{kind}"\n'
    )
    if value is not None:
        text += f"value = {value}\n"
    dropped: list[float] = []  # plant times the contactor was found de-energized

    def on_event(sim: SimRun, event: str, payload: dict[str, Any]) -> None:
        if event == "RunStarted":
            sim.plant.add_observer(
                lambda plant: dropped.append(plant.t) if not plant.contactor_energized else None
            )

    with tempfile.TemporaryDirectory() as d:
        doc, sim = await run_recipe(
            RECIPES[0], Path(d), scenario=parse_scenario(text), on_event=on_event
        )
    start = next(t for t, e, p in sim.events if e == "StepStarted" and p["name"] == "reflow")
    fired = start + after
    lamps0 = min(t for t, pct in sim.lamps.power if t >= fired and pct == 0.0)
    # The contactor command when the coupler answers; else the coupler's own watchdog.
    commanded = [t for t, on in sim.lamps.contactor if t >= fired and not on]
    opened = min(commanded or [t for t in dropped if t >= fired])
    assert doc["result"] != "completed", f"{device} {kind}: not detected"
    return lamps0 - fired, opened - fired


async def main(repeats: int) -> None:
    print(
        f"{'fault':24s} {'n':>3s} {'lamps0 p50':>11s} {'p99':>7s} {'contactor p50':>14s} {'p99':>7s}"
    )
    for device, kind, value in FAULTS:
        lamps: list[float] = []
        contactor: list[float] = []
        for i in range(repeats):
            a, b = await _one(device, kind, value, AFTER_S + 0.1 * i / repeats)
            lamps.append(a)
            contactor.append(b)
        print(
            f"{device + ' ' + kind:24s} {repeats:3d} {statistics.median(lamps):10.3f}s "
            f"{_pct(lamps, 0.99):6.3f}s {statistics.median(contactor):13.3f}s "
            f"{_pct(contactor, 0.99):6.3f}s"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    asyncio.run(main(args.repeats))
