"""The steps of a vacuum-film bond (DESIGN.md "Vacuum-film bond")."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from daemon.errors import SafetyStop, StepFailed
from daemon.machine.monitor import Snapshot
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
from daemon.steps.chuck_hold import ChuckHold
from daemon.steps.context import CMD_TIMEOUT_S, StepContext
from daemon.thermal.loop import (
    EUTECTIC_BAND_K,
    ChipLoop,
    Piece,
    Profile,
    chip_controller,
    radiation_term,
)
from daemon.thermal.panel_loop import PanelLoop, ZoneLoop
from daemon.thermal.panel_reach import FREEZE_IN_STEP_S
from drivers.protocols import OUT_FILM_CLAMP, VALVE_N2_PURGE, VALVE_PUMP, VALVE_VENT
from drivers.reading import Status

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
    temps = snap.temps
    for ch in ("component", "chuck"):
        r = temps.get(ch)
        if r is not None and r.status is Status.OK:  # snap.temp, inlined: every period
            return r.value
    return 25.0


async def chuck_stabilize(ctx: StepContext, step: ChuckStabilize) -> None:
    m, t = ctx.machine, CMD_TIMEOUT_S
    await ctx.command("film clamp", m.dio.write_output(OUT_FILM_CLAMP, True, t))
    await ctx.command("chiller setpoint", m.chiller.set_setpoint(step.setpoint_c, t))
    await ctx.command("chiller start", m.chiller.start(t))
    await ctx.command("pump start", m.pump.start(t))
    # From here on every tick drives the chiller's setpoint (overdrive, then the brake of
    # the heat still in the fluid): ADR 0090. The settle below is the recipe's, unchanged:
    # the chuck within tolerance for settle_s without a break.
    hi = ctx.limits.chuck_setpoint_max_c
    component = getattr(getattr(ctx.recipe, "materials", None), "component", None)
    if component is not None:
        # The fluid never overdriven to where the part's polymer could get near its limit.
        suspend_c = component.tg_c - component.tg_margin_c - ctx.limits.component_approach_c
        hi = max(step.setpoint_c, min(hi, suspend_c))
    ctx.chuck_hold = ChuckHold(step.setpoint_c, ctx.limits.chuck_setpoint_min_c, hi)
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


# The profile clock waits while the chip trails the reading it should show by more than this
# on a ramp: catching up afterwards would break the recipe's ramp-rate limits.
TRAIL_BAND_C = 0.5
# A hold's timer runs only while the chip reads within this of its level (guaranteed soak),
# and a ramp ends only once the chip is this close to the ramp's target.
SOAK_BAND_C = 1.0
# The last few kelvin of a profile's last ramp: no waiting for a trailing chip there.
FINAL_APPROACH_C = 5.0
# Lamp power fades to 0 % over this many kelvin below the component suspend level
# (Tg − margin − approach): the chip loop gives way before the interlock has to.
COMPONENT_SOFT_K = 5.0
# The cool ramp runs this far under the recipe's max rate: the conformance check's
# least-squares rate over the noisy thermocouple must not read above the limit (ADR 0063).
# Pressed under the film (keep_vacuum) the chip is tied to the component and the loop works
# at tens of % of lamp power: it holds the plan to ~0.1 °C/s of measured rate, so the margins
# are 0.2 / 0.25 °C/s (ADR 0091). At atmosphere (bump reflow) the unpressed chip cools near
# the limit on its own with the loop at 0-2 % (the chuck loop holds the chuck colder than the
# bare chiller did): 0.4 / 0.45.
COOL_RATE_MARGIN_C_S = 0.25
COOL_RATE_MARGIN_ATM_C_S = 0.45
# Above the freezing band the chip is molten and tracks closely: a margin for the rate
# noise (≈ 6σ of the 2 s slope) and the tracking ripple.
NOISE_RATE_MARGIN_C_S = 0.2
NOISE_RATE_MARGIN_ATM_C_S = 0.4
# ... and this much slower again through the freezing band, from just above it to well
# below: a chip the released heat held back catches up there, under the slower ramp.
FREEZE_RATE_FACTOR = 0.9
FREEZE_RATE_FACTOR_ATM = 0.85
FREEZE_PAD_ABOVE_C = 1.0
FREEZE_PAD_BELOW_C = 5.0
# How far below the cool step's to_c its ramp aims (the reading crosses to_c on the ramp).
COOL_OVERRUN_C = 2.0

log = structlog.get_logger(__name__)


def _component_suspend_c(ctx: StepContext) -> float | None:
    """Where the interlocks start holding the lamps off for the component (None: no polymer
    component named, as in a lead-lift recipe: no cap). Fixed for a run: worked out once per
    profile followed, not every period."""
    component = getattr(getattr(ctx.recipe, "materials", None), "component", None)
    if component is None:
        return None
    return float(component.tg_c - component.tg_margin_c) - ctx.limits.component_approach_c


def _component_cap_pct(suspend_c: float | None, snap: Snapshot) -> float:
    avg = snap.component_avg_c()  # the one the interlocks judged
    if avg is None:
        return 100.0  # the interlocks act on a lost component reading; the chip loop need not
    if suspend_c is None:
        return 100.0
    headroom = suspend_c - avg
    return 100.0 * min(1.0, max(0.0, headroom / COMPONENT_SOFT_K))


def _controller(ctx: StepContext) -> ChipLoop:
    if ctx.controller is not None:
        return ctx.controller
    model = ctx.thermal_model
    # No solder named (a lead-lift heat release): no latent heat to plan.
    solder = getattr(getattr(ctx.recipe, "materials", None), "solder", None)
    melt = None if solder is None else (solder.solidus_c, solder.liquidus_c)
    if ctx.controller_factory is not None:  # tune's experiment, the bench's baseline
        ctx.controller = ctx.controller_factory(model, melt)
    elif model is None:
        # A guessed model would heat a real machine with guessed power (ADR 0062).
        raise StepFailed(
            "no identified thermal model in the configuration ([thermal]): run "
            "`bonderd tune --write --config FILE` on this machine first (docs/thermal-control.md)"
        )
    else:
        ctx.controller = chip_controller(model, melt)
    return ctx.controller


def _advance(
    piece: Piece | None,
    t_profile: float,
    dt: float,
    measured: float,
    expected: float,
    *,
    final: bool = False,
) -> float:
    """The profile clock after ``dt``: ramps end on temperature, holds count inside the band.

    ``final``: the profile's last piece. Within FINAL_APPROACH_C of its target the setpoint
    no longer waits for a trailing chip, and once its time is up it stands on the target with
    no slope, so the loop brings the chip onto it: held on the ramp, the lag-compensated
    reference kept the chip a lag's worth short of the target for ever (a cool step that
    never ended, ~4 % of SnPb seeds)."""
    if piece is None:
        return t_profile + dt
    if piece.kind == "hold":
        return t_profile + dt if abs(measured - expected) <= SOAK_BAND_C else t_profile
    direction = 1.0 if piece.to_c >= piece.from_c else -1.0
    near_end = final and abs(measured - piece.to_c) <= FINAL_APPROACH_C
    if (expected - measured) * direction > TRAIL_BAND_C and not near_end:
        return t_profile  # latent heat or a weak lamp: the setpoint waits for the chip
    nxt = t_profile + dt
    if nxt >= piece.t1 and (expected - measured) * direction > SOAK_BAND_C:
        # A ramp ends on temperature, not on the clock: the chip must read within the band
        # of what it reads on target (the reading trails a ramp by its lag).
        return piece.t1 if final else max(t_profile, piece.t1 - 1e-9)
    return nxt


async def _follow(
    ctx: StepContext,
    profile: Profile,
    channel: str,
    done: Callable[[float, float], bool],
    *,
    continued: bool = False,
    guard: Callable[[ZoneLoop, Snapshot], None] | None = None,
) -> None:
    """Drive the lamps so ``channel`` follows ``profile`` until ``done(t_profile, measured)``.

    ``guard``: asked each period after a panel's zones are commanded; it stops the step by
    raising (the reflow's dead-zone check, ADR 0165).

    The controller is kept in the context from reflow into cooling: a fresh integrator at
    the step boundary would drop the lamps and let the joints cool faster than allowed.
    """
    ctrl = _controller(ctx)
    t_profile = 0.0
    # ``continued``: this profile takes over where the last one ended (the reflow announced
    # it); the periods the executor took to change steps count as profile time.
    last: float | None = ctx.follow_ended_t if continued else None
    suspend_c = _component_suspend_c(ctx)
    while True:
        snap = await ctx.tick()
        measured = _chip(snap, channel)
        expected = ctrl.expected_c
        if last is not None and expected is None:
            # A loop with no expectation of the reading (the identification experiment of
            # bonderd tune) runs on the plain clock.
            t_profile += snap.t - last
        elif last is not None and expected is not None:
            piece = profile.piece_at(t_profile)
            final = piece is not None and piece is profile.pieces[-1] and profile.then is None
            t_profile = _advance(piece, t_profile, snap.t - last, measured, expected, final=final)
        last = snap.t
        cap = _component_cap_pct(suspend_c, snap)
        pct = ctrl.update(
            snap.t,
            profile,
            t_profile,
            measured_c=measured,
            sink_c=_sink(snap),
            cap_pct=cap,
        )
        ctx.setpoint_c = profile.at(t_profile)[0]
        if isinstance(ctrl, ZoneLoop):
            await ctx.set_lamp_zones(ctrl.zones(snap.t, snap.temp, pct, cap, snap.lamp_pct))
            if isinstance(ctrl, PanelLoop) and ctrl.has_model:
                ctx.site_estimates = {f"{ch}_est": v for ch, v in ctrl.estimates.items()}
            if guard is not None:
                guard(ctrl, snap)
        else:
            await ctx.set_lamps(pct)
        ctx.progress = min(1.0, t_profile / profile.duration_s) if profile.duration_s > 0 else 1.0
        if done(t_profile, measured):
            ctx.follow_ended_t = snap.t
            ctx.site_estimates = {}  # the observer advances only while the loop runs
            return


async def _start_heating(ctx: StepContext, channel: str) -> float:
    snap = await ctx.tick()
    start = _chip(snap, channel)
    if not ctx.lamps_enabled:
        await ctx.enable_lamps()
    return start


def _next_cool(ctx: StepContext, step: Reflow) -> Segment | None:
    """The cool step right after this reflow, as the ramp the controller looks ahead into."""
    steps = ctx.recipe.steps
    i = next((k for k, s in enumerate(steps) if s is step), None)
    if i is None or i + 1 >= len(steps):
        return None
    nxt = steps[i + 1]
    if not isinstance(nxt, Cool):
        return None
    solder = getattr(getattr(ctx.recipe, "materials", None), "solder", None)
    rate = _cool_rate(nxt) if solder is None else _above_liquidus_rate(nxt)
    return Segment(ramp_c_per_s=rate, to_c=nxt.to_c)


def _cool_segments(ctx: StepContext, start: float, step: Cool) -> list[Segment]:
    """Down at the cool rate, but slower through the solder's freezing band: the latent heat
    released there is what the loop tracks least precisely (the lamps cannot pull heat out),
    and the rate limit is checked over the whole band."""
    rate = _cool_rate(step)
    # The ramp aims past the step's end: the step ends as the reading crosses to_c at the
    # ramp's rate, not on a chip creeping onto a setpoint parked at to_c (seconds of noise).
    end_c = step.to_c - COOL_OVERRUN_C
    solder = getattr(getattr(ctx.recipe, "materials", None), "solder", None)
    if solder is None:
        return [Segment(ramp_c_per_s=rate, to_c=end_c)]
    top = solder.liquidus_c + FREEZE_PAD_ABOVE_C
    bottom = solder.solidus_c - EUTECTIC_BAND_K - FREEZE_PAD_BELOW_C
    if not (start > top and step.to_c < bottom):
        return [Segment(ramp_c_per_s=rate, to_c=end_c)]
    return [
        Segment(ramp_c_per_s=_above_liquidus_rate(step), to_c=top),
        Segment(ramp_c_per_s=rate * _freeze_factor(step), to_c=bottom),
        Segment(ramp_c_per_s=rate, to_c=end_c),
    ]


def planned_descent_rate(step: Cool) -> float:
    """The rate the cool step plans from the peak down to the freezing band: with the
    reflow's profile it sets the time above liquidus the run delivers (ADR 0063)."""
    return _above_liquidus_rate(step)


def _above_liquidus_rate(step: Cool) -> float:
    """Down from the peak to the freezing band the chip is molten and tracks closely: the
    noise margin alone, so the time above liquidus is the profile's."""
    margin = NOISE_RATE_MARGIN_C_S if step.keep_vacuum else NOISE_RATE_MARGIN_ATM_C_S
    return max(step.max_rate_c_per_s - margin, 0.5 * step.max_rate_c_per_s)


def _cool_rate(step: Cool) -> float:
    margin = COOL_RATE_MARGIN_C_S if step.keep_vacuum else COOL_RATE_MARGIN_ATM_C_S
    return max(step.max_rate_c_per_s - margin, 0.5 * step.max_rate_c_per_s)


def _freeze_factor(step: Cool) -> float:
    return FREEZE_RATE_FACTOR if step.keep_vacuum else FREEZE_RATE_FACTOR_ATM


async def reflow(ctx: StepContext, step: Reflow) -> None:
    start = await _start_heating(ctx, step.control_tc)
    fastest = max(seg.ramp_c_per_s for seg in step.segments)
    room = max(0.1, min(1.0, 0.5 * (step.max_ramp_c_per_s - fastest)))
    profile = Profile(start, step.segments, then=_next_cool(ctx, step), catch_up_c_s=room)
    await _follow(
        ctx,
        profile,
        step.control_tc,
        lambda t, _: t >= profile.duration_s,
        guard=_dead_zone_guard(ctx, step),
    )


def _dead_zone_guard(ctx: StepContext, step: Reflow) -> Callable[[ZoneLoop, Snapshot], None]:
    """Stop the reflow, before it is lost, once a lamp zone is dead and the twin says the
    other zones at their limits cannot bring every site into the peak window, bottom and top,
    or not close enough together to freeze in step within the cool's rate (ADRs 0165, 0168).
    Asked again only when the set of dead zones changes."""
    examined: list[frozenset[int]] = [frozenset()]
    peak_c = max(seg.to_c for seg in step.segments)
    win = step.peak_window_c
    cool_step = next((s for s in ctx.recipe.steps if isinstance(s, Cool)), None)
    # Sites this far apart at the peak reach their freeze more than FREEZE_IN_STEP_S apart
    # at the cool's rate (panel_reach, ADR 0168); without a cool step no rate is judged.
    max_spread = None if cool_step is None else cool_step.max_rate_c_per_s * FREEZE_IN_STEP_S

    def guard(ctrl: ZoneLoop, snap: Snapshot) -> None:
        if isinstance(ctrl, PanelLoop):
            ctrl.ceiling_c = win.max  # a measured site over the window's top pulls down (0169)
            hot = ctrl.over_ceiling(snap.temp)
            if hot is not None:
                # Its peak is out of the window whatever follows: stopped naming it, not let
                # ride on to the chip limit while the others are brought on (ADR 0169).
                raise StepFailed(
                    f"{hot[0]} at {hot[1]:.1f} °C over the peak window's top ({win.max:g} °C) "
                    f"{ctrl.ceiling_held_s:.1f} s after its zones were pulled down; its bond "
                    "is out of the window, stopped before the chip limit"
                )
        dead = ctx.dead_zones() if ctx.dead_zones is not None else frozenset()
        if dead == examined[0] or not isinstance(ctrl, PanelLoop):
            return
        examined[0] = dead
        base = snap.temp("chuck")
        if base is None:
            return
        reach = ctrl.reach_with_dead(
            dead,
            base_c=base,
            peak_c=peak_c,
            window_min_c=win.min,
            window_max_c=win.max,
            max_spread_c=max_spread,
        )
        zones = ", ".join(str(z + 1) for z in sorted(dead))
        if reach.control_lost:
            raise StepFailed(
                f"lamp zone {zones} dead: the other zones at full power cannot bring the "
                f"control site ({step.control_tc}) to its {peak_c:g} °C peak; stopped before "
                "the reflow is lost"
            )
        if reach.below or reach.above:
            out = []
            if reach.below:
                out.append(
                    f"{', '.join(reach.below)} cannot reach the peak window (≥ {win.min:g} °C)"
                )
            if reach.above:
                out.append(
                    f"{', '.join(reach.above)} cannot stay under the window's top ({win.max:g} °C)"
                )
            raise StepFailed(
                f"lamp zone {zones} dead: with the other zones at their limits "
                f"{'; '.join(out)} while the control site is at {peak_c:g} °C; stopped "
                "before the reflow is lost"
            )
        if reach.apart and max_spread is not None:
            raise StepFailed(
                f"lamp zone {zones} dead: with the other zones at their limits the sites "
                f"cannot be brought within {max_spread:g} °C of each other at the peak "
                f"(best {reach.spread_c:.1f} °C; {', '.join(reach.apart)} too far from the "
                f"control site): they would freeze out of step and cool faster than "
                f"{max_spread / FREEZE_IN_STEP_S:g} °C/s; stopped before the reflow is lost"
            )
        # The twin says every site can still get there: the other zones take the dead one's
        # share, each within its limits (ADR 0167).
        ctrl.compensate(dead)

    return guard


async def cool(ctx: StepContext, step: Cool) -> None:
    if not step.keep_vacuum:
        await _valve(ctx, VALVE_PUMP, False)
    # The latest snapshot, not the next: a period at the reflow's last power is a step late.
    snap = ctx.monitor.latest or await ctx.tick()
    start = _chip(snap, "chip")
    # The lamps hold the chip back to the recipe's rate; starting from the setpoint the chip
    # was following keeps the hand-over smooth (its reading trails by the sensor lag).
    if ctx.setpoint_c is not None and abs(ctx.setpoint_c - start) <= SOAK_BAND_C:
        start = ctx.setpoint_c
    profile = Profile(
        start,
        _cool_segments(ctx, start, step),
        # No catch-up on the way down: a chip that trails the cooling setpoint is held by
        # latent heat or by the lamps' lag, and catching up would mean cooling faster than the
        # plan, the one thing the rate limit forbids (the bump reflow at atmosphere cools
        # close to the limit on its own). A chip the lamps stall (the clock kept waiting) is
        # still brought down, at up to the ramp's rate: the controller's business, ADR 0110.
        catch_up_c_s=0.0,
    )
    if not ctx.lamps_enabled:
        await ctx.enable_lamps()
    # The lamps stay under control at the end: a following securement release takes them
    # over without a gap (a gap is a thermal shock), and venting switches them off first.
    await _follow(
        ctx, profile, "chip", lambda t, c: c <= step.to_c, continued=start == ctx.setpoint_c
    )


# Without an identified model (tune's experiment, the baseline PID) the release ramps at this.
RELEASE_FALLBACK_RATE_C_S = 2.0


def _release_rate(ctx: StepContext, start: float, goal: float, sink: float) -> float:
    """The release ramp's rate (ADR 0091): down, what the model says the chip loses with the
    lamps off at ``goal`` (the slowest point of the way down: the physics, no recipe rate
    applies to the solid joints); up, the reflow's ramp limit less its noise margin."""
    model = ctx.thermal_model
    if goal >= start:
        reflow = next((s for s in ctx.recipe.steps if isinstance(s, Reflow)), None)
        if reflow is None:
            return RELEASE_FALLBACK_RATE_C_S
        return max(0.5 * reflow.max_ramp_c_per_s, reflow.max_ramp_c_per_s - NOISE_RATE_MARGIN_C_S)
    if model is None:
        return RELEASE_FALLBACK_RATE_C_S
    shed = model.loss_per_s * (goal - sink) + model.radiation_c_s_per_1e10_k4 * radiation_term(goal)
    return max(RELEASE_FALLBACK_RATE_C_S, shed)


async def securement_release(ctx: StepContext, step: SecurementRelease) -> None:
    start = await _start_heating(ctx, "chip")
    if ctx.setpoint_c is not None and abs(ctx.setpoint_c - start) <= SOAK_BAND_C:
        start = ctx.setpoint_c
    snap = ctx.monitor.latest or await ctx.tick()
    rate = _release_rate(ctx, start, step.temperature_c, _sink(snap))
    ramp = Segment(ramp_c_per_s=rate, to_c=step.temperature_c, hold_s=0.0)
    # No catch-up: a chip trailing the ramp is brought on by the ramp's end, not hurried.
    profile = Profile(start, [ramp], catch_up_c_s=0.0)
    held_since: float | None = None

    def done(_t: float, measured: float) -> bool:
        # The recipe's hold: time_s with the chip inside temperature ± tolerance, without a
        # break; it counts from the chip's entry into the band, wherever the ramp is.
        nonlocal held_since
        now = ctx.clock.now()
        if abs(measured - step.temperature_c) > step.tolerance_c:
            held_since = None
            return False
        held_since = now if held_since is None else held_since
        ctx.progress = min(1.0, (now - held_since) / max(step.time_s, 1e-9))
        return now - held_since >= step.time_s

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
