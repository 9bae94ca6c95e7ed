"""Step type → step function, for every recipe kind (which may be held: daemon/recipe/catalogue.py)."""

from __future__ import annotations

from daemon.recipe.model import (
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
