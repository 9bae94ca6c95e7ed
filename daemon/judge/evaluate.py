"""The conformance of a run of any kind: each kind's checks from its own module, and for a
panel of chips every site's (``judge.panel``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from daemon.judge.lead_lift import evaluate_lead_lift
from daemon.judge.panel import SiteVerdict, evaluate_panel
from daemon.judge.reflow import VACUUM_LIMIT_MBAR, evaluate_reflow
from daemon.judge.series import Trace
from daemon.judge.types import Check, Metrics, StepOutcome
from daemon.recipe.model import AnyRecipe, LeadLiftRecipe
from daemon.store.trace import Sample


@dataclass(frozen=True)
class Judgement:
    checks: list[Check]
    metrics: Metrics
    sites: list[SiteVerdict] | None = field(default=None)  # a panel's; None: one chip


def judge_run(
    recipe: AnyRecipe,
    samples: Sequence[Sample],
    steps: Sequence[StepOutcome],
    *,
    vacuum_limit_mbar: float = VACUUM_LIMIT_MBAR,
) -> Judgement:
    """Judge the recorded run against the recipe's process conditions.

    ``samples`` are the run's trace in time order (as recorded); ``steps`` the outcomes of
    the steps that started, in order. Returns every check, passed or not, the metrics and,
    for a panel, every site's verdict (with the check that all held and ``uniformity_c``).
    Pure, and up to a few tenths of a second for a long run (a panel: that per site): call
    it off the event loop that runs the controllers (daemon/run/executor.py ``judge``).
    """
    if isinstance(recipe, LeadLiftRecipe):
        return Judgement(*evaluate_lead_lift(recipe, samples, steps))
    # One trace for the run's checks and the panel's sites: the reference site is judged on
    # the same column the run is.
    tr = Trace(recipe, samples)
    checks, metrics = evaluate_reflow(
        recipe, samples, steps, vacuum_limit_mbar=vacuum_limit_mbar, trace=tr
    )
    panel = evaluate_panel(recipe, samples, tr)
    if panel is None:
        return Judgement(checks, metrics)
    return Judgement(
        [*checks, panel.check], {**metrics, "uniformity_c": panel.uniformity_c}, panel.sites
    )


def evaluate(
    recipe: AnyRecipe,
    samples: Sequence[Sample],
    steps: Sequence[StepOutcome],
    *,
    vacuum_limit_mbar: float = VACUUM_LIMIT_MBAR,
) -> tuple[list[Check], Metrics]:
    """The checks and the metrics of ``judge_run``."""
    j = judge_run(recipe, samples, steps, vacuum_limit_mbar=vacuum_limit_mbar)
    return j.checks, j.metrics
