"""The conformance of a run of any kind: each kind's checks from its own module."""

from __future__ import annotations

from collections.abc import Sequence

from daemon.judge.lead_lift import evaluate_lead_lift
from daemon.judge.reflow import VACUUM_LIMIT_MBAR, evaluate_reflow
from daemon.judge.types import Check, Metrics, StepOutcome
from daemon.recipe.model import AnyRecipe, LeadLiftRecipe
from daemon.store.trace import Sample


def evaluate(
    recipe: AnyRecipe,
    samples: Sequence[Sample],
    steps: Sequence[StepOutcome],
    *,
    vacuum_limit_mbar: float = VACUUM_LIMIT_MBAR,
) -> tuple[list[Check], Metrics]:
    """Judge the recorded run against the recipe's process conditions.

    ``samples`` are the run's trace in time order (as recorded); ``steps`` the outcomes of
    the steps that started, in order. Returns every check, passed or not, and the metrics.
    Pure, and up to a few tenths of a second for a long run: call it off the event loop
    that runs the controllers (daemon/run/executor.py ``judge``).
    """
    if isinstance(recipe, LeadLiftRecipe):
        return evaluate_lead_lift(recipe, samples, steps)
    return evaluate_reflow(recipe, samples, steps, vacuum_limit_mbar=vacuum_limit_mbar)
