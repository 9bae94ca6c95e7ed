"""The bench's timed whole-recipe run (bench/virtual.py): the machine as the tests run it,
without the tests' plant-invariant referee, and with every interlock rule on every snapshot."""

from __future__ import annotations

from pathlib import Path

from tests.simrun import RECIPES, run_recipe

SNPB = next(r for r in RECIPES if r.stem == "snpb-low-tg")


async def test_the_timed_run_has_no_referee_and_the_interlocks_judge_every_snapshot(
    tmp_path: Path,
) -> None:
    doc, sim = await run_recipe(SNPB, tmp_path, check_invariants=False)
    assert doc["result"] == "completed"
    # The referee is not consulted (it ran after every integration: a test's extra check).
    assert sim.invariants.checks == 0
    # The interlocks are the machine's: a judgement for every snapshot of the run (the trace
    # holds one sample per snapshot), none skipped to go faster.
    samples = sim.store.samples(doc["run_id"])
    assert len(samples) > 4000  # 213 s at 20 Hz
    assert sim.interlocks.cycles >= len(samples)
    assert sim.interlocks.trip is None
