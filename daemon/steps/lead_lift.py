"""The steps of a lead lift (DESIGN.md "Lead-lift"): release the tips from the support, lift
the support through a set displacement, encapsulate, cure, release the terminals.

Heat comes from the chuck's temperature-control unit (a heating circulator), never from the
lamps: the working space is not sealed under a film for these steps. The daemon estimates
UV dose, dispensed volume and cure conversion (daemon/steps/estimates.py) and every step
judges its end on those estimates and on the stage's measured position and force.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import structlog

from daemon.errors import SafetyStop, StepFailed
from daemon.machine.monitor import Snapshot
from daemon.machine.motion import Z_MOVING_UM, ZCommand
from daemon.recipe.model import (
    Cure,
    Encapsulate,
    HeatRelease,
    LeadLiftStep,
    SupportRelease,
    UvRelease,
)
from daemon.steps.context import CMD_TIMEOUT_S, StepContext
from daemon.thermal.loop import Profile
from drivers.protocols import (
    IN_CHUCK_VACUUM_OK,
    IN_SUPPORT_VACUUM_OK,
    OUT_CHUCK_VACUUM,
    OUT_SUPPORT_VACUUM,
    OUT_UV_ENABLE,
)

log = structlog.get_logger(__name__)

# A vacuum switch closes within a fraction of a second of its valve; give it this long.
VACUUM_HOLD_WAIT_S = 5.0
# Time after opening the shutter before its status must say open (the source's own lag).
SHUTTER_OPEN_WAIT_S = 1.0
# Extra time past the programmed shot for the dispenser to report it ended.
SHOT_END_MARGIN_S = 2.0
# The circulator setpoint is trimmed so the measured part temperature sits on the target:
# the chuck and the part run a little below the fluid (losses); integral time and bounds.
TRIM_TI_S = 30.0
TRIM_MAX_C = 10.0
TRIM_BAND_C = 3.0
# Which thermocouple a chuck-heated step judges on: the part side first.
PART_CHANNELS = ("component", "chuck")
HOLDS = (
    (OUT_CHUCK_VACUUM, IN_CHUCK_VACUUM_OK, "chuck"),
    (OUT_SUPPORT_VACUUM, IN_SUPPORT_VACUUM_OK, "support"),
)


async def _best_effort(ctx: StepContext, what: str, aw: Awaitable[None]) -> None:
    """A cleanup command on the way out of a failing step: its own failure must not hide
    why the step failed (the safe state repeats it)."""
    try:
        await asyncio.shield(ctx.command(what, aw))
    except StepFailed as exc:
        log.error("step_cleanup_failed", action=what, error=str(exc))


async def _tick(ctx: StepContext) -> Snapshot:
    snap = await ctx.tick()
    ctx.estimates.update(snap)
    return snap


def _part_temp(snap: Snapshot) -> float:
    for ch in PART_CHANNELS:
        v = snap.temp(ch)
        if v is not None:
            return v
    raise SafetyStop("tc_fault", "neither the component nor the chuck thermocouple reads")


# ---- vacuum holds --------------------------------------------------------------------------


def _holds_ok(snap: Snapshot) -> list[str]:
    """The vacuum holds that are not made, by name."""
    inputs = snap.inputs
    if inputs is None:
        return ["chuck", "support"]
    return [name for _, sw, name in HOLDS if not inputs.get(sw, False)]


async def engage_holds(ctx: StepContext) -> None:
    """Both sides held by vacuum: the chip's side on the chuck, the support on the Z head."""
    dio = ctx.machine.dio
    for out, _, name in HOLDS:
        await ctx.command(f"{name} vacuum on", dio.write_output(out, True, CMD_TIMEOUT_S))
    since = ctx.clock.now()
    while True:
        snap = await _tick(ctx)
        missing = _holds_ok(snap)
        if not missing:
            return
        if snap.t - since > VACUUM_HOLD_WAIT_S:
            raise StepFailed(
                f"{' and '.join(missing)} vacuum hold not made within {VACUUM_HOLD_WAIT_S:g} s "
                "(vacuum switch open): part or support not seated, or a vacuum leak"
            )


def check_holds(snap: Snapshot, doing: str) -> None:
    if snap.inputs is None:
        # The coupler did not answer this cycle: the holds are unknown, not lost. A silent
        # coupler is the interlock's `device_lost` (at its second miss, ADR 0085), which
        # names the coupler; a hold reported lost here would name the wrong cause.
        return
    missing = _holds_ok(snap)
    if missing:
        raise SafetyStop(
            "vacuum_hold_lost",
            f"{' and '.join(missing)} vacuum hold lost while {doing}: the part or the support "
            "may have shifted",
        )


# ---- UV exposure ---------------------------------------------------------------------------


async def uv_expose(ctx: StepContext, irradiance: float, dose: float) -> None:
    """Open the shutter until the integrated dose reaches ``dose`` mJ/cm², then close it."""
    uv = ctx.machine.uv
    await ctx.command("UV irradiance", uv.set_irradiance(irradiance, CMD_TIMEOUT_S))
    snap = await _tick(ctx)
    status = snap.uv
    if status is None:
        raise SafetyStop("uv_lost", "UV source not answering before the exposure")
    if status.fault or not status.lamp_ready:
        raise StepFailed(f"UV source not ready: {status.detail or 'lamp not ready'}")
    start = ctx.estimates.uv_dose_mj_cm2
    expected_s = dose / irradiance
    reached = False
    dio = ctx.machine.dio
    ctx.uv_exposing = True
    try:
        # The source's remote interlock is closed only for the exposure (ADR 0115): a source
        # that stops answering with its shutter open is closed by opening it again.
        await ctx.command("UV enable", dio.write_output(OUT_UV_ENABLE, True, CMD_TIMEOUT_S))
        await ctx.command("UV shutter open", uv.open_shutter(CMD_TIMEOUT_S))
        opened = ctx.clock.now()
        while True:
            snap = await _tick(ctx)
            delivered = ctx.estimates.uv_dose_mj_cm2 - start
            ctx.progress = min(1.0, delivered / dose)
            status = snap.uv
            if status is None:
                raise SafetyStop(
                    "uv_lost",
                    f"UV source stopped answering during the exposure at {delivered:.0f} of "
                    f"{dose:g} mJ/cm²",
                )
            if status.fault:
                raise SafetyStop(
                    "uv_fault",
                    f"UV source failed during the exposure ({status.detail or 'fault'}) at "
                    f"{delivered:.0f} of {dose:g} mJ/cm²: the tips are not released",
                )
            if not status.shutter_open and snap.t - opened > SHUTTER_OPEN_WAIT_S:
                raise StepFailed(
                    f"UV shutter closed by itself at {delivered:.0f} of {dose:g} mJ/cm²"
                )
            if delivered >= dose:
                reached = True
                return
            if snap.t - opened > 2.0 * expected_s + SHUTTER_OPEN_WAIT_S:
                raise StepFailed(
                    f"UV dose {delivered:.0f} of {dose:g} mJ/cm² after {snap.t - opened:.1f} s; "
                    f"at {irradiance:g} mW/cm² it takes {expected_s:.1f} s: the source is "
                    "delivering less than it was set to"
                )
    finally:
        # Closed whatever ended the exposure. At the dose a failed close fails the step; on
        # the way out of a failure it must not hide the cause (the safe state closes it
        # again, and the interlock trips on a shutter left open).
        try:
            if reached:
                await ctx.command("UV shutter close", uv.close_shutter(CMD_TIMEOUT_S))
            else:
                await _best_effort(ctx, "UV shutter close", uv.close_shutter(CMD_TIMEOUT_S))
        finally:
            try:
                off = dio.write_output(OUT_UV_ENABLE, False, CMD_TIMEOUT_S)
                if reached:
                    await ctx.command("UV disable", off)
                else:
                    await _best_effort(ctx, "UV disable", off)
            finally:
                ctx.uv_exposing = False


async def uv_release(ctx: StepContext, step: UvRelease) -> None:
    await uv_expose(ctx, step.irradiance_mw_cm2, step.dose_mj_cm2)


# ---- chuck heating through the circulator --------------------------------------------------


class _Trim:
    """Slow integral trim of the circulator setpoint onto the measured part temperature.

    It integrates only near the target: far from it the circulator is still bringing the
    fluid there, and an integral wound up over a ramp would overshoot the part.
    """

    def __init__(self, limit_c: float) -> None:
        self.offset = 0.0
        self.limit_c = limit_c
        self.last_t: float | None = None

    def setpoint(self, t: float, target: float, measured: float) -> float:
        error = target - measured
        if self.last_t is not None and abs(error) <= TRIM_BAND_C:
            self.offset += error * (t - self.last_t) / TRIM_TI_S
            self.offset = max(-TRIM_MAX_C, min(TRIM_MAX_C, self.offset))
        self.last_t = t
        return min(self.limit_c, target + self.offset)


async def _circulator(ctx: StepContext, setpoint: float) -> None:
    ch = ctx.machine.chiller
    await ctx.command("circulator setpoint", ch.set_setpoint(setpoint, CMD_TIMEOUT_S))


async def _start_circulator(ctx: StepContext) -> None:
    await ctx.command("circulator start", ctx.machine.chiller.start(CMD_TIMEOUT_S))


async def hold_temperature(
    ctx: StepContext, temperature_c: float, tolerance_c: float, time_s: float
) -> None:
    """Bring the part to ``temperature_c`` with the circulator and hold ``time_s`` in band."""
    await _start_circulator(ctx)
    trim = _Trim(ctx.limits.chuck_heat_setpoint_max_c)
    inside_since: float | None = None
    while True:
        snap = await _tick(ctx)
        measured = _part_temp(snap)
        ctx.setpoint_c = temperature_c
        await _circulator(ctx, trim.setpoint(snap.t, temperature_c, measured))
        if abs(measured - temperature_c) <= tolerance_c:
            inside_since = snap.t if inside_since is None else inside_since
            ctx.progress = min(1.0, (snap.t - inside_since) / time_s)
            if snap.t - inside_since >= time_s:
                return
        else:
            inside_since = None  # the hold must be continuous to count
            ctx.progress = 0.0


async def cool_chuck(ctx: StepContext, to_c: float) -> None:
    await _circulator(ctx, to_c)
    ctx.setpoint_c = to_c
    while True:
        snap = await _tick(ctx)
        if _part_temp(snap) <= to_c + 2.0:
            ctx.setpoint_c = None
            return


async def heat_release(ctx: StepContext, step: HeatRelease) -> None:
    await hold_temperature(ctx, step.temperature_c, step.tolerance_c, step.time_s)
    if step.cool_to_c is not None:
        await cool_chuck(ctx, step.cool_to_c)
    ctx.setpoint_c = None


# ---- the lift ------------------------------------------------------------------------------


async def _stop_stage(ctx: StepContext) -> None:
    # No move is commanded any more: the following-error interlock must not read the
    # deceleration as the stage failing to follow.
    ctx.z_command = None
    await _best_effort(ctx, "Z stage stop", ctx.machine.zstage.stop(CMD_TIMEOUT_S))


async def _wait_homed(ctx: StepContext) -> None:
    """Wait for the homing move to end; a stage busy and not moving is stalled.

    The following-error interlock has no commanded trajectory to compare a homing move with
    (the controller picks its own speed), so the stall is watched here, by the interlock's
    own rule: busy, and no movement for ``z_stall_s``. Without it a jammed axis would hold
    the step until its timeout, and the reason would not name the stage.
    """
    still: tuple[float, float] | None = None  # (position, since when) while not moving
    while True:
        snap = await _tick(ctx)
        st = snap.stage
        if st is None:
            raise SafetyStop("zstage_lost", "Z stage stopped answering while homing")
        if st.fault:
            raise SafetyStop("zstage_fault", f"Z stage fault while homing: {st.detail}")
        if st.homed and not st.busy:
            return
        if not st.busy or not st.position_um.ok:
            still = None
            continue
        z = st.position_um.value
        if still is None or abs(z - still[0]) > Z_MOVING_UM:
            still = (z, snap.t)
        elif snap.t - still[1] >= ctx.limits.z_stall_s:
            await _stop_stage(ctx)
            raise SafetyStop(
                "z_stall",
                f"Z stage stalled while homing: busy at {z:.0f} µm and not moving for "
                f"{snap.t - still[1]:.1f} s (jammed axis or lost motor phase)",
            )


async def lead_lift(ctx: StepContext, step: LeadLiftStep) -> None:
    stage = ctx.machine.zstage
    snap = await _tick(ctx)
    st = snap.stage
    if st is None or st.fault:
        raise StepFailed(f"Z stage not ready: {st.detail if st is not None else 'no status'}")
    if not st.homed:
        # Homing ends at the support's rest position, where the head can seal on it.
        await ctx.command("Z stage home", stage.home(CMD_TIMEOUT_S))
        await _wait_homed(ctx)
    await engage_holds(ctx)
    snap = await _tick(ctx)
    st = snap.stage
    if st is None or not st.position_um.ok:
        raise StepFailed("Z stage position unknown before the lift")
    start = st.position_um.value
    target = start + step.displacement_um
    accel = step.accel_um_s2 or ctx.limits.z_accel_default_um_s2
    ctx.z_command = ctx.z_last_move = ZCommand(
        ctx.clock.now(), start, target, step.speed_um_s, accel
    )
    await ctx.command(
        "Z stage move",
        stage.move_abs(target, step.speed_um_s, CMD_TIMEOUT_S, accel_um_s2=step.accel_um_s2),
    )
    try:
        arrived_at: float | None = None
        while True:
            snap = await _tick(ctx)
            check_holds(snap, "lifting")
            st = snap.stage
            if st is None:
                raise SafetyStop("zstage_lost", "Z stage stopped answering during the lift")
            if st.fault:
                raise SafetyStop("zstage_fault", f"Z stage fault during the lift: {st.detail}")
            if not st.force_n.ok or not st.position_um.ok:
                raise SafetyStop("zstage_reading", "Z stage gives no valid force or position")
            z, force = st.position_um.value, st.force_n.value
            ctx.progress = max(0.0, min(1.0, (z - start) / step.displacement_um))
            if force > step.force_limit_n:
                await _stop_stage(ctx)
                raise SafetyStop(
                    "lift_force",
                    f"lift force {force:.2f} N above the limit {step.force_limit_n:g} N at "
                    f"{z - start:.0f} of {step.displacement_um:g} µm: a lead tip is still "
                    "bonded to the support; stage stopped before the leads tear",
                )
            if arrived_at is None:
                if not st.busy:
                    if abs(z - target) > step.tolerance_um:
                        raise StepFailed(
                            f"Z stage stopped at {z - start:.0f} µm of {step.displacement_um:g} "
                            f"µm (tolerance {step.tolerance_um:g} µm)"
                        )
                    arrived_at = snap.t
            elif snap.t - arrived_at >= step.hold_s:
                return
    except BaseException:
        await _stop_stage(ctx)
        raise


# ---- encapsulation and cure ----------------------------------------------------------------


async def encapsulate(ctx: StepContext, step: Encapsulate) -> None:
    disp = ctx.machine.dispenser
    flow = ctx.estimates.flow_ul_per_kpa_s
    assert flow is not None  # a lead-lift recipe states its encapsulant
    if step.time_s is not None:
        shot = step.time_s
    else:
        assert step.volume_ul is not None
        shot = step.volume_ul / (flow * step.pressure_kpa)
    await ctx.command("dispenser pressure", disp.set_pressure(step.pressure_kpa, CMD_TIMEOUT_S))
    start_ul = ctx.estimates.dispensed_ul
    fired = ctx.clock.now()
    try:
        ctx.shot_end_t = fired + shot
        await ctx.command("dispense", disp.dispense(shot, CMD_TIMEOUT_S))
        seen = False
        while True:
            snap = await _tick(ctx)
            d = snap.dispenser
            if d is None:
                raise SafetyStop("dispenser_lost", "dispenser stopped answering during the shot")
            if d.fault:
                raise SafetyStop("dispenser_fault", f"dispenser fault during the shot: {d.detail}")
            seen = seen or d.dispensing
            ctx.progress = min(0.9, 0.9 * (snap.t - fired) / shot)
            if seen and not d.dispensing:
                ctx.shot_end_t = None
                break
            if snap.t - fired > shot + SHOT_END_MARGIN_S:
                raise StepFailed(
                    f"the dispenser did not end its {shot:.2f} s shot within "
                    f"{SHOT_END_MARGIN_S:g} s of its end"
                )
    except BaseException:
        await _best_effort(ctx, "dispenser stop", disp.stop(CMD_TIMEOUT_S))
        raise
    dispensed = ctx.estimates.dispensed_ul - start_ul
    want = step.volume_ul if step.volume_ul is not None else flow * step.pressure_kpa * shot
    if dispensed < 0.8 * want:
        raise StepFailed(
            f"dispensed about {dispensed:.2f} µL of {want:.2f} µL (pressure × time): the shot "
            "was cut short"
        )
    flow_in_from = ctx.clock.now()
    while ctx.clock.now() - flow_in_from < step.flow_in_s:
        await _tick(ctx)
        ctx.progress = 0.9 + 0.1 * min(1.0, (ctx.clock.now() - flow_in_from) / step.flow_in_s)
    ctx.progress = 1.0


async def cure(ctx: StepContext, step: Cure) -> None:
    await _start_circulator(ctx)
    snap = await _tick(ctx)
    profile = Profile(_part_temp(snap), step.segments)
    trim = _Trim(ctx.limits.chuck_heat_setpoint_max_c)
    t0 = snap.t
    while True:
        snap = await _tick(ctx)
        measured = _part_temp(snap)
        target, _ = profile.at(snap.t - t0)
        ctx.setpoint_c = target
        await _circulator(ctx, trim.setpoint(snap.t, target, measured))
        alpha = ctx.estimates.cure_conversion
        ctx.progress = min(1.0, alpha / step.conversion_target)
        if snap.t - t0 >= profile.duration_s and alpha >= step.conversion_target:
            break
    if step.cool_to_c is not None:
        await cool_chuck(ctx, step.cool_to_c)
    ctx.setpoint_c = None


async def support_release(ctx: StepContext, step: SupportRelease) -> None:
    if step.method == "uv":
        assert step.irradiance_mw_cm2 is not None and step.dose_mj_cm2 is not None
        await uv_expose(ctx, step.irradiance_mw_cm2, step.dose_mj_cm2)
    else:
        assert step.temperature_c is not None and step.time_s is not None
        await hold_temperature(ctx, step.temperature_c, step.tolerance_c, step.time_s)
    ctx.setpoint_c = None
