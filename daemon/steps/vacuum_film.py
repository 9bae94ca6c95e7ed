"""The steps of a vacuum-film bond (DESIGN.md "Vacuum-film bond")."""

from __future__ import annotations

from collections.abc import Callable

from daemon.errors import SafetyStop, StepFailed
from daemon.monitor import Snapshot
from daemon.recipe.model import (
    ChuckStabilize,
    Cool,
    PumpDown,
    Purge,
    Reflow,
    SecurementRelease,
    Segment,
    VacuumFilmStep,
    Vent,
)
from daemon.steps.context import CMD_TIMEOUT_S, StepContext
from daemon.thermal import LampController, Profile
from drivers.protocols import OUT_FILM_CLAMP, VALVE_N2_PURGE, VALVE_PUMP, VALVE_VENT

O2_FRESH_WAIT_S = 6.0  # the analyzer reports every 2 s; allow a few lines after backfill


async def _valve(ctx: StepContext, valve: str, open_: bool) -> None:
    state = "open" if open_ else "close"
    await ctx.command(f"{state} valve {valve}", ctx.machine.valves.set(valve, open_, CMD_TIMEOUT_S))


async def _wait_pressure(ctx: StepContext, ok: Callable[[float], bool], what: str) -> Snapshot:
    while True:
        try:
            snap = await ctx.tick()
        except StepFailed as exc:
            # A pump-down that stalls is a leak or a torn film far more often than a slow pump:
            # say so, with the pressure it stalled at.
            last = ctx.monitor.latest
            p_now = last.pressure_mbar() if last is not None else None
            at = f"{p_now:.3g} mbar" if p_now is not None else "unknown pressure"
            hint = " (leak or torn film?)" if what.startswith("pumping") else ""
            raise StepFailed(f"{exc} while {what}: stalled at {at}{hint}") from exc
        p = snap.pressure_mbar()
        if p is None:
            raise SafetyStop("gauge_lost", f"vacuum gauge gives no valid reading while {what}")
        if ok(p):
            return snap


def _chip(snap: Snapshot, channel: str) -> float:
    value = snap.temp(channel)
    if value is None:
        reading = snap.temps.get(channel)
        why = reading.detail or reading.status.value if reading is not None else "no reading"
        raise SafetyStop("tc_fault", f"thermocouple '{channel}' failed ({why}) during heating")
    return value


def _sink(snap: Snapshot) -> float:
    """Where the chip's heat goes: the component, else the chuck, else ambient."""
    for ch in ("component", "chuck"):
        v = snap.temp(ch)
        if v is not None:
            return v
    return 25.0


async def chuck_stabilize(ctx: StepContext, step: ChuckStabilize) -> None:
    m, t = ctx.machine, CMD_TIMEOUT_S
    await ctx.command("film clamp", m.dio.write_output(OUT_FILM_CLAMP, True, t))
    await ctx.command("chiller setpoint", m.chiller.set_setpoint(step.setpoint_c, t))
    await ctx.command("chiller start", m.chiller.start(t))
    await ctx.command("pump start", m.pump.start(t))
    inside_since: float | None = None
    while True:
        snap = await ctx.tick()
        chuck = snap.temp("chuck")
        if chuck is not None and abs(chuck - step.setpoint_c) <= step.tolerance_c:
            inside_since = snap.t if inside_since is None else inside_since
            ctx.progress = min(1.0, (snap.t - inside_since) / max(step.settle_s, 1e-9))
            if snap.t - inside_since >= step.settle_s:
                return
        else:
            inside_since = None
            ctx.progress = 0.0


async def purge(ctx: StepContext, step: Purge) -> None:
    await _valve(ctx, VALVE_VENT, False)
    for cycle in range(step.cycles):
        await _valve(ctx, VALVE_N2_PURGE, False)
        await _valve(ctx, VALVE_PUMP, True)
        await _wait_pressure(ctx, lambda p: p <= step.pump_to_mbar, f"pumping cycle {cycle + 1}")
        await _valve(ctx, VALVE_PUMP, False)
        await _valve(ctx, VALVE_N2_PURGE, True)
        done = await _wait_pressure(
            ctx, lambda p: p >= step.backfill_to_mbar, f"backfilling cycle {cycle + 1}"
        )
        await _valve(ctx, VALVE_N2_PURGE, False)
        ctx.progress = (cycle + 1) / (step.cycles + 1)
    # Only a reading taken after the last backfill says anything about this atmosphere.
    while True:
        snap = await ctx.tick()
        o2 = snap.o2
        if o2 is not None and o2.ok and o2.ts >= done.t:
            if o2.value > step.o2_target_ppm:
                raise StepFailed(
                    f"O2 {o2.value:.1f} ppm after {step.cycles} purge cycles, "
                    f"target {step.o2_target_ppm:g} ppm"
                )
            ctx.progress = 1.0
            return
        if snap.t - done.t > O2_FRESH_WAIT_S:
            raise StepFailed(f"O2 analyzer gave no fresh reading within {O2_FRESH_WAIT_S:g} s")


async def pump_down(ctx: StepContext, step: PumpDown) -> None:
    await _valve(ctx, VALVE_VENT, False)
    await _valve(ctx, VALVE_N2_PURGE, False)
    await _valve(ctx, VALVE_PUMP, True)
    await _wait_pressure(ctx, lambda p: p <= step.target_mbar, "pumping down")
    ctx.progress = 0.7
    if step.leak_check is None:
        return
    # Rate of rise: isolate the pump and watch the pressure climb.
    await _valve(ctx, VALVE_PUMP, False)
    first = await _wait_pressure(ctx, lambda p: True, "leak check")
    last = first
    while last.t - first.t < step.leak_check.hold_s:
        last = await _wait_pressure(ctx, lambda p: True, "leak check")
    await _valve(ctx, VALVE_PUMP, True)
    p0, p1 = first.pressure_mbar(), last.pressure_mbar()
    assert p0 is not None and p1 is not None
    rise_per_min = (p1 - p0) / (last.t - first.t) * 60.0
    if rise_per_min > step.leak_check.max_rise_mbar_per_min:
        raise StepFailed(
            f"leak check: pressure rose {rise_per_min:.2f} mbar/min with the pump isolated, "
            f"limit {step.leak_check.max_rise_mbar_per_min:g} mbar/min"
        )
    await _wait_pressure(ctx, lambda p: p <= step.target_mbar, "pumping down after leak check")
    ctx.progress = 1.0


# The profile clock waits while the chip trails its setpoint by more than this: through
# latent heat (melting, freezing) the chip stalls, and catching up afterwards would break
# the ramp-rate limits.
TRAIL_BAND_C = 1.5


async def _follow(
    ctx: StepContext,
    profile: Profile,
    channel: str,
    done: Callable[[float, float], bool],
) -> None:
    """Drive the lamps so ``channel`` follows ``profile`` until ``done(t, measured)``.

    The controller is kept in the context from reflow into cooling: a fresh integrator at
    the step boundary would drop the lamps and let the joints cool faster than allowed.
    """
    ctrl = ctx.controller or LampController(max_pct=100.0)
    ctx.controller = ctrl
    t_profile = 0.0
    last: float | None = None
    while True:
        snap = await ctx.tick()
        measured = _chip(snap, channel)
        if last is not None:
            reference, slope = profile.at(max(0.0, t_profile - ctrl.model.sensing_lag_s))
            behind = (reference - measured) * (1.0 if slope >= 0 else -1.0)
            trailing = slope != 0.0 and behind > TRAIL_BAND_C
            if not trailing:
                t_profile += snap.t - last
        last = snap.t
        pct, ctx.setpoint_c = ctrl.update(snap.t, profile, t_profile, measured, _sink(snap))
        await ctx.set_lamps(pct)
        ctx.progress = min(1.0, t_profile / profile.duration_s) if profile.duration_s > 0 else 1.0
        if done(t_profile, measured):
            return


async def _start_heating(ctx: StepContext, channel: str) -> float:
    snap = await ctx.tick()
    start = _chip(snap, channel)
    if not ctx.lamps_enabled:
        await ctx.enable_lamps()
    return start


async def reflow(ctx: StepContext, step: Reflow) -> None:
    start = await _start_heating(ctx, step.control_tc)
    profile = Profile(start, step.segments)
    await _follow(ctx, profile, step.control_tc, lambda t, _: t >= profile.duration_s)


async def cool(ctx: StepContext, step: Cool) -> None:
    if not step.keep_vacuum:
        await _valve(ctx, VALVE_PUMP, False)
    snap = await ctx.tick()
    start = _chip(snap, "chip")
    # Lamps hold the chip back to the allowed rate; a margin keeps noise off the limit.
    rate = step.max_rate_c_per_s * 0.8
    profile = Profile(start, [Segment(ramp_c_per_s=rate, to_c=step.to_c)])
    if not ctx.lamps_enabled:
        await ctx.enable_lamps()
    # The lamps stay under control at the end: a following securement release takes them
    # over without a gap (a gap is a thermal shock), and venting switches them off first.
    await _follow(ctx, profile, "chip", lambda t, c: c <= step.to_c)


async def securement_release(ctx: StepContext, step: SecurementRelease) -> None:
    start = await _start_heating(ctx, "chip")
    ramp = Segment(ramp_c_per_s=2.0, to_c=step.temperature_c, hold_s=0.0)
    profile = Profile(start, [ramp])
    held_since: float | None = None

    def done(t: float, measured: float) -> bool:
        nonlocal held_since
        if t >= profile.duration_s and abs(measured - step.temperature_c) <= step.tolerance_c:
            held_since = t if held_since is None else held_since
            return t - held_since >= step.time_s
        return False

    await _follow(ctx, profile, "chip", done)
    ctx.controller = None
    await ctx.disable_lamps()


async def vent(ctx: StepContext, step: Vent) -> None:
    await ctx.disable_lamps()  # never vent onto lit lamps, whatever ran before
    ctx.controller = None
    await _valve(ctx, VALVE_PUMP, False)
    await _valve(ctx, VALVE_N2_PURGE, False)
    await _valve(ctx, VALVE_VENT, True)
    await _wait_pressure(ctx, lambda p: p >= step.to_mbar, "venting")
    await _valve(ctx, VALVE_VENT, False)
    ctx.progress = 1.0


async def run_step(ctx: StepContext, step: VacuumFilmStep) -> None:
    match step:
        case ChuckStabilize():
            await chuck_stabilize(ctx, step)
        case Purge():
            await purge(ctx, step)
        case PumpDown():
            await pump_down(ctx, step)
        case Reflow():
            await reflow(ctx, step)
        case Cool():
            await cool(ctx, step)
        case SecurementRelease():
            await securement_release(ctx, step)
        case Vent():
            await vent(ctx, step)


# Steps during which a hold would leave solder molten or a profile half-run.
NO_HOLD = frozenset({"reflow", "cool", "securement_release"})
