"""Step type → step function, for every recipe kind, and the steps a hold may not interrupt."""

from __future__ import annotations

from daemon.recipe.model import (
    AnyRecipe,
    AnyStep,
    ChuckStabilize,
    Cool,
    Cure,
    Encapsulate,
    HeatRelease,
    LeadLiftStep,
    PumpDown,
    Purge,
    Reflow,
    SecurementRelease,
    SupportRelease,
    UvRelease,
    Vent,
)
from daemon.steps import lead_lift as ll
from daemon.steps import vacuum_film as vf
from daemon.steps.context import StepContext

# Steps during which a hold would leave solder molten, a profile half-run, an exposure or a
# shot half-given, or the leads half-bent: an operator who must stop them aborts.
NO_HOLD: dict[str, frozenset[str]] = {
    "vacuum_film_bond": vf.NO_HOLD,
    "bump_reflow": frozenset({"reflow", "cool"}),
    "lead_lift": frozenset(
        {"uv_release", "heat_release", "lead_lift", "encapsulate", "cure", "support_release"}
    ),
}


def no_hold(recipe: AnyRecipe) -> frozenset[str]:
    return NO_HOLD[recipe.kind]


async def run_step(ctx: StepContext, step: AnyStep) -> None:
    match step:
        case (
            ChuckStabilize()
            | Purge()
            | PumpDown()
            | Reflow()
            | Cool()
            | SecurementRelease()
            | Vent()
        ):
            await vf.run_step(ctx, step)
        case UvRelease():
            await ll.uv_release(ctx, step)
        case HeatRelease():
            await ll.heat_release(ctx, step)
        case LeadLiftStep():
            await ll.lead_lift(ctx, step)
        case Encapsulate():
            await ll.encapsulate(ctx, step)
        case Cure():
            await ll.cure(ctx, step)
        case SupportRelease():
            await ll.support_release(ctx, step)
