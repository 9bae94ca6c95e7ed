"""The run executor: one run at a time, steps as async functions, guaranteed safe end.

Two tasks live for the length of a run, both fed by the monitor's snapshots: the steps and
the trace writer. Unsafe conditions are the interlock monitor's (daemon/safety/interlocks.py, its
own task; ADR 0030): it switches the energy off itself and tells the executor, which then
aborts the run with the interlock named in the reason. Whatever ends the
steps — completion, a step failure, a guard, an operator abort, a bug — the ``finally``
path turns every energy source off and, unless the run completed, runs the whole
safe-state sequence before the record is closed.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from daemon import __version__
from daemon.config import Limits
from daemon.errors import CommandRefused, SafetyStop, StepFailed
from daemon.judge.evaluate import Judgement, judge_run
from daemon.judge.panel import unwired_sites
from daemon.judge.types import StepOutcome
from daemon.machine.identity import identify_machine
from daemon.machine.monitor import Monitor, NextCall, Snapshot
from daemon.recipe.catalogue import STEP_TYPES, holdable
from daemon.recipe.load import LoadedRecipe
from daemon.recipe.model import AnyRecipe, LeadLiftRecipe
from daemon.run.result import build_result
from daemon.run.run_state import RunState, TransitionRefused, Trigger, next_state
from daemon.safety.interlocks import Alarm, InterlockLatched, Interlocks
from daemon.safety.run_view import RunLimits, RunView
from daemon.safety.safe_state import SafeStatePlan, enter_safe_state, outputs_off
from daemon.steps.context import StepContext
from daemon.steps.dispatch import run_step
from daemon.steps.estimates import ProcessEstimates
from daemon.store.records import RunStore
from daemon.store.trace import Sample
from daemon.thermal.loop import ControllerFactory, ThermalModel
from drivers.clock import Clock
from drivers.protocols import Machine
from drivers.reading import Status

log = structlog.get_logger(__name__)

Listener = Callable[[str, dict[str, Any]], None]
SAFE_STATE_STEP = "safe_state"  # the trace's step name while the safe state runs
# The safe state's stop actions for the stage and the dispenser (daemon/safety/safe_state.py), and
# the time a device that did not take the stop is given past its move's or shot's end.
STAGE_STOP_ACTION = "Z stage stopped"
DISPENSER_STOP_ACTION = "dispenser stopped"
STOP_SETTLE_S = 0.5
# Where the safe state brings a chuck heated by a lead-lift step: handling temperature.
LEAD_LIFT_COOL_TO_C = 25.0
TRACE_FLUSH_EVERY = 5  # samples; at 20 Hz a crash loses at most a quarter of a second
# ...and at least this much wall time between commits: at speed 1 the same thing; under
# virtual or scaled time one commit per 0.2 s of the host instead of one per 5 samples (a
# BEGIN/SELECT/COMMIT per quarter simulated second was ~10 % of a virtual-time run).
TRACE_FLUSH_WALL_S = 0.2


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def judge(
    clock: Clock, recipe: AnyRecipe, samples: list[Sample], outcomes: list[StepOutcome]
) -> Judgement:
    """The run's checks, metrics and sites (daemon.judge.evaluate.judge_run) from its
    complete trace.

    Judging the trace is pure computation, ~25-60 µs a sample (a 10-minute run: 0.3-0.7 s):
    on wall-clock time it runs in a worker thread, so the control loop keeps its period
    meanwhile (ADR 0097). Under virtual time it runs inline: a thread's wall time must not
    let the simulated machine run on, the run stays deterministic.
    """
    if not math.isfinite(clock.speed):
        return judge_run(recipe, samples, outcomes)
    judging = asyncio.ensure_future(asyncio.to_thread(judge_run, recipe, samples, outcomes))
    try:
        return await asyncio.shield(judging)
    except asyncio.CancelledError:
        # Stopped while judging (the daemon stopping): the record is finished all the same,
        # as when stopped during the steps. The judgement is awaited, and the cancellation
        # asked again: the caller's task ends cancelled after it has closed the record.
        me = asyncio.current_task()
        if me is None:
            raise
        me.uncancel()
        result = await judging
        me.cancel()
        return result


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class Executor:
    def __init__(
        self,
        machine: Machine,
        clock: Clock,
        monitor: Monitor,
        store: RunStore,
        limits: Limits,
        *,
        equipment_id: str = "bonder-01",
        config_hash: str = "",
        interlocks: Interlocks | None = None,
        thermal_model: ThermalModel | None = None,
        controller_factory: ControllerFactory | None = None,
    ) -> None:
        self.machine = machine
        self.thermal_model = thermal_model  # None: heating steps refuse (ADR 0062)
        # The chip loop of every heating step; None = the model's ChipController. `bonderd
        # tune` hands its identification experiment here, the bench its baseline PID.
        self.controller_factory = controller_factory
        self.clock = clock
        self.monitor = monitor
        self.store = store
        self.limits = limits
        self.equipment_id = equipment_id
        self.config_hash = config_hash
        self.state = RunState.IDLE
        self.run_id: str | None = None
        self.ctx: StepContext | None = None
        self.current_step: str | None = None
        self.current_type: str | None = None
        self.step_index = 0
        self.step_count = 0
        self._listeners: list[Listener] = []
        self._steps_task: asyncio.Task[None] | None = None
        self._abort_reason: str | None = None
        self._abort_code: str | None = None
        self._resume = asyncio.Event()
        # Who asked for the pending hold and when (run time), and who resumed it.
        self._hold_by, self._hold_t, self._resume_by = "", 0.0, ""
        self._in_heat_phase = False
        self._run_t0 = 0.0
        self._alarms: list[dict[str, Any]] = []
        # Never without interlocks: a caller that brings none gets a private set, whose task
        # the executor keeps running for the length of each run.
        self.interlocks = interlocks or Interlocks(machine, clock, monitor, limits)
        self.interlocks.on_trip = self._on_trip
        self.interlocks.subscribe(self._on_interlock_event)

    # ---- observation -------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _emit(self, event: str, **payload: Any) -> None:
        for listener in self._listeners:
            try:
                listener(event, payload)
            except Exception:  # a broken listener must not break a run
                log.exception("listener_failed", event_name=event)

    def _fire(self, trigger: Trigger) -> None:
        old = self.state
        self.state = next_state(old, trigger)
        log.info("state_changed", old=old.value, new=self.state.value, trigger=trigger.value)
        self._emit("StateChanged", old=old.value, new=self.state.value, run_id=self.run_id)

    def t_run(self) -> float:
        return self.clock.now() - self._run_t0

    # ---- operator commands -------------------------------------------------------------
    def request_hold(self, by: str = "") -> None:
        """Hold at the next step boundary; ``by`` names who asked (the run record keeps it)."""
        if self.state is not RunState.RUNNING:
            raise CommandRefused(f"hold refused: the machine is {self.state}, not running")
        if self._in_heat_phase or not holdable(self.current_type):
            raise CommandRefused(
                f"hold refused during step '{self.current_step}' ({self.current_type}): "
                "holding now would spoil the part (molten solder, a profile, exposure, shot "
                "or lift half done). Abort if needed."
            )
        self._hold_by, self._hold_t = by, self.t_run()
        self._fire(Trigger.HOLD)

    def resume(self, by: str = "") -> None:
        try:
            self._fire(Trigger.RESUME)
        except TransitionRefused as exc:
            raise CommandRefused(f"resume refused: {exc}") from None
        self._resume_by = by
        self._resume.set()

    def abort(self, reason: str = "aborted by operator", code: str = "operator_abort") -> None:
        if self.state not in (RunState.RUNNING, RunState.HOLDING, RunState.HELD):
            raise CommandRefused(f"abort refused: the machine is {self.state}, no run to abort")
        self._abort_reason = self._abort_reason or reason
        self._abort_code = self._abort_code or code
        self._fire(Trigger.ABORT)
        if self.ctx is not None:
            self.ctx.aborting = True
        self._cancel_steps()

    def _cancel_steps(self) -> None:
        """Cancel the steps, and keep cancelling until they have stopped.

        On Python 3.11 ``asyncio.wait_for`` returns the result instead of raising when it is
        cancelled just as its awaitable completes (fixed in 3.12). Simulated devices answer at
        once, so a single ``cancel()`` is regularly lost and the step (reflow, lamps on) runs
        on. Re-cancelling while the run is aborting closes that gap.
        """
        task = self._steps_task
        if task is None or task.done() or self.state is not RunState.ABORTING:
            return
        task.cancel()
        asyncio.get_running_loop().call_later(0.01, self._cancel_steps)

    def reset(self) -> None:
        try:
            self.interlocks.reset()
        except InterlockLatched as exc:
            raise CommandRefused(str(exc)) from None
        if self.state is RunState.IDLE:
            return  # an interlock tripped between runs: clearing it was the whole reset
        try:
            self._fire(Trigger.RESET)
        except TransitionRefused as exc:
            raise CommandRefused(f"reset refused: {exc}") from None

    # ---- interlocks --------------------------------------------------------------------
    def _on_trip(self, alarm: Alarm) -> None:
        """The interlock task tripped; the outputs are off already. Abort the run."""
        if self.state in (RunState.RUNNING, RunState.HOLDING, RunState.HELD):
            self._abort_reason = self._abort_reason or f"interlock {alarm.code}: {alarm.message}"
            self._abort_code = self._abort_code or alarm.code
            self._fire(Trigger.ABORT)
            self._resume.set()
            if self.ctx is not None:
                self.ctx.aborting = True
            self._cancel_steps()

    def _on_interlock_event(self, event: str, payload: dict[str, Any]) -> None:
        if event == "AlarmRaised" and self.run_id is not None and self.state is not RunState.IDLE:
            self._alarm(payload["code"], payload["severity"], payload["message"])
        else:
            self._emit(event, run_id=self.run_id, step=self.current_step, **payload)

    # ---- the run -----------------------------------------------------------------------
    def start_refusal(self) -> str | None:
        """Why a start would be refused now, whoever asks (an interlock latched), or None."""
        trip = self.interlocks.trip
        if trip is None:
            return None
        return f"start refused: interlock {trip.code} is tripped ({trip.message}); reset first"

    async def run(
        self,
        loaded: LoadedRecipe,
        *,
        lot_id: str,
        operator: str | None = None,
        recipe_version: int = 1,
    ) -> dict[str, Any]:
        """Run one recipe to its end and return the result document."""
        recipe = loaded.recipe
        refusal = self.start_refusal()
        if refusal is not None:
            raise CommandRefused(refusal)
        unwired = unwired_sites(recipe, self.machine.thermocouples.channels)
        if unwired:
            raise CommandRefused(
                f"start refused: the panel's instrumented site channel(s) {', '.join(unwired)} "
                "are on no thermocouple input of this machine (map them in "
                "devices.thermocouples or devices.site_thermocouples: docs/panel.md)"
            )
        # Before START: nothing can cancel the run half-started (traceability; never raises).
        devices = await identify_machine(self.machine)
        self._fire(Trigger.START)
        self.run_id = run_id = new_run_id()
        self._abort_reason = self._abort_code = None
        self._alarms = []
        self._in_heat_phase = False
        self._resume.clear()
        self.step_count = len(recipe.steps)
        started_at = _utc_now()
        self.store.create_run(
            run_id,
            recipe_name=recipe.name,
            recipe_version=recipe_version,
            recipe_sha256=loaded.sha256,
            recipe_text=loaded.text,
            lot_id=lot_id,
            operator=operator or "",
            equipment_id=self.equipment_id,
            software_version=__version__,
            config_hash=self.config_hash,
            started_at=started_at,
            devices=devices,
        )
        self._run_t0 = self.clock.now()
        ctx = self.ctx = StepContext(
            machine=self.machine,
            clock=self.clock,
            monitor=self.monitor,
            recipe=recipe,
            limits=self.limits,
            estimates=ProcessEstimates.for_recipe(recipe),
            thermal_model=self.thermal_model,
            controller_factory=self.controller_factory,
        )
        outcomes: list[StepOutcome] = []
        samples: list[Sample] = []
        self._emit(
            "RunStarted",
            run_id=run_id,
            recipe={"name": recipe.name, "version": recipe_version, "sha256": loaded.sha256},
            lot_id=lot_id,
            steps=[s.name for s in recipe.steps],
        )
        log.info("run_started", run_id=run_id, recipe=recipe.name, lot_id=lot_id)

        ctx.inhibit = self.interlocks.lamp_inhibit
        ctx.dead_zones = self.interlocks.dead_zones
        self.interlocks.arm(
            RunView(
                limits=RunLimits.of(recipe, self.limits),
                step_type=lambda: self.current_type,
                lamps_enabled=lambda: ctx.lamps_enabled,
                lamp_cmd_pct=ctx.lamp_cmd_since,
                uv_exposing=lambda: ctx.uv_exposing,
                z_command=lambda: ctx.z_command,
                lamp_zone_cmds=lambda: ctx.lamp_zone_in_force,
            )
        )
        own_interlocks = not self.interlocks.running
        if own_interlocks:
            self.interlocks.start()
        stop_trace = self._start_trace(run_id, samples)
        self._steps_task = asyncio.create_task(self._steps(outcomes), name="steps")
        completed = False
        me = asyncio.current_task()
        stopping = False  # run() itself was cancelled: finish the record, then re-raise
        try:
            await self._steps_task
            completed = True
        except asyncio.CancelledError:
            if me is not None and me.cancelling():
                stopping = True
                me.uncancel()
                self._steps_task.cancel()
                await asyncio.gather(self._steps_task, return_exceptions=True)
            if self._abort_reason is None:
                self._abort_reason, self._abort_code = "daemon stopping", "shutdown"
            if self.state is not RunState.ABORTING:
                self._fire(Trigger.ABORT)
        except (StepFailed, SafetyStop) as exc:
            code = exc.code if isinstance(exc, SafetyStop) else "step_failed"
            self._fail(code, str(exc))
        except Exception as exc:
            log.exception("run_internal_error", run_id=run_id)
            self._fail("internal_error", f"internal error: {type(exc).__name__}: {exc}")
        finally:
            await self._end_energy(ctx, completed)
            if completed and self.state is RunState.ABORTING:
                # An interlock tripped after the last step had completed, while the outputs
                # were going off: the trip stands, the run ends through the safe state.
                completed = False
            if not completed:
                # The trace goes on through the safe state; it must not count as the step.
                self.current_step, self.current_type = SAFE_STATE_STEP, None
                solidus = recipe.materials.solder.solidus_c
                report = await enter_safe_state(
                    self.machine,
                    self.clock,
                    self.monitor,
                    solidus_c=solidus,
                    plan=self._safe_state_plan(ctx),
                )
                for problem in report.problems:
                    self._alarm("safe_state_incomplete", "warning", problem)
            self.interlocks.disarm()
            if own_interlocks:
                await self.interlocks.stop()
            stop_trace()
            self.store.add_samples(run_id, samples[self._flushed :])

        judgement = await judge(self.clock, recipe, samples, outcomes)
        result = build_result(
            run_id=run_id,
            recipe_name=recipe.name,
            recipe_version=recipe_version,
            recipe_sha256=loaded.sha256,
            lot_id=lot_id,
            operator=operator or "",
            equipment_id=self.equipment_id,
            aborted=not completed,
            reason=self._abort_reason or "",
            started_at=started_at,
            ended_at=_utc_now(),
            steps=outcomes,
            checks=judgement.checks,
            metrics=judgement.metrics,
            sites=[s.to_json() for s in judgement.sites] if judgement.sites is not None else None,
            alarms=self._alarms,
            software_version=__version__,
            config_hash=self.config_hash,
        )
        doc = result.to_json_dict()
        self.store.finish_run(
            run_id,
            state=doc["result"],
            reason=doc["reason"],
            ended_at=doc["ended_at"],
            result=doc,
        )
        # A trip may still land in the last instants (after the interlocks were disarmed,
        # only the always-on rules): it is latched and in the alarms; the state follows it.
        late_trip = self.state is RunState.ABORTING
        self._fire(Trigger.COMPLETE if completed and not late_trip else Trigger.SAFE)
        self.current_step = self.current_type = None
        self._emit("RunCompleted", **doc)
        log.info("run_completed", run_id=run_id, result=doc["result"], reason=doc["reason"])
        if stopping:
            raise asyncio.CancelledError
        return doc

    _flushed = 0

    def _safe_state_plan(self, ctx: StepContext) -> SafeStatePlan:
        plan = self.interlocks.safe_state_plan()
        if isinstance(ctx.recipe, LeadLiftRecipe) and ctx.setpoint_c is not None:
            # A heated lead-lift step (release, cure) was running: bring the chuck back down
            # with the circulator rather than leave the part at cure temperature.
            return SafeStatePlan(vent_now=plan.vent_now, cool_chuck_to_c=LEAD_LIFT_COOL_TO_C)
        return plan

    def _fail(self, code: str, reason: str) -> None:
        trip = self.interlocks.trip
        if trip is not None and self._abort_reason is None:
            # The interlock tripped first and switched things off under the step, which then
            # failed on the consequence: the trip is the cause the operator must see.
            self._abort_reason = f"interlock {trip.code}: {trip.message}"
            self._abort_code = trip.code
        self._abort_reason = self._abort_reason or reason
        self._abort_code = self._abort_code or code
        self._alarm(code, "alarm", reason)
        if self.state is not RunState.ABORTING:
            self._fire(Trigger.ABORT)

    def note(self, code: str, message: str) -> None:
        """A warning recorded with the run in progress (its alarms, events and report), such
        as an engineer's override of the twin's predicted failure; nothing between runs."""
        if self.run_id is not None and self.state is not RunState.IDLE:
            self._alarm(code, "warning", message)

    def _alarm(self, code: str, severity: str, message: str) -> None:
        assert self.run_id is not None
        t = round(self.t_run(), 3)
        alarm = {"t_s": t, "code": code, "severity": severity, "message": message}
        self._alarms.append(alarm)
        self.store.add_alarm(self.run_id, t, code, severity, message)
        self._emit("AlarmRaised", run_id=self.run_id, step=self.current_step, **alarm)
        log.error("alarm", run_id=self.run_id, step=self.current_step, **alarm)

    def _unstoppable(self, code: str, device: str, what: str, end: float) -> None:
        """Alarm that the run waits for ``device`` to end its ``what`` by itself at ``end``."""
        wait = end + STOP_SETTLE_S - self.clock.now()
        if wait > 0:
            message = (
                f"{device} did not answer the stop: waiting {wait:.1f} s for its {what} to end"
            )
            self._alarm(code, "alarm", message)

    async def _end_energy(self, ctx: StepContext, completed: bool) -> None:
        # Shielded: a second cancellation (Ctrl-C twice) must not stop the lamps going off.
        pending = ctx.z_last_move
        report = await asyncio.shield(outputs_off(self.machine))
        ctx.lamps_enabled = False
        ctx.note_lamp_cmd(0.0)
        ctx.uv_exposing = False
        # The stage has been stopped: no move is outstanding any more.
        ctx.z_command = None

        # A stage or a dispenser that did not take the stop (not answering) runs its
        # commanded move, or its timed shot, to the end by itself. The run is not over, and
        # nobody may reach in, before both have ended: one wait, to the later end.
        def stop_failed(action: str) -> bool:
            return any(p.startswith(action) for p in report.problems)

        ends: list[float] = []
        if pending is not None and stop_failed(STAGE_STOP_ACTION):
            ends.append(pending.t0 + pending.duration_s())
            what = f"commanded move to {pending.target_um:.0f} µm"
            self._unstoppable("zstage_unstoppable", "Z stage", what, ends[-1])
        shot_end, ctx.shot_end_t = ctx.shot_end_t, None
        if shot_end is not None and stop_failed(DISPENSER_STOP_ACTION):
            ends.append(shot_end)
            self._unstoppable("dispenser_unstoppable", "dispenser", "timed shot", shot_end)
        if ends and (wait := max(ends) + STOP_SETTLE_S - self.clock.now()) > 0:
            await asyncio.shield(self.clock.sleep(wait))
        for problem in report.problems:
            self._alarm("safe_state_incomplete", "alarm", problem)

    async def _steps(self, outcomes: list[StepOutcome]) -> None:
        assert self.ctx is not None and self.run_id is not None
        ctx, run_id = self.ctx, self.run_id
        for idx, step in enumerate(ctx.recipe.steps):
            if ctx.aborting:  # a cancellation lost inside a device command (see _cancel_steps)
                raise asyncio.CancelledError
            await self._hold_point(idx)
            self.step_index, self.current_step, self.current_type = idx, step.name, step.type
            kind = STEP_TYPES[step.type]
            if kind.melts:
                self._in_heat_phase = True
            ctx.step_name, ctx.progress = step.name, 0.0
            ctx.timeout_s = step.timeout_s
            started = self.t_run()
            ctx.deadline = self.clock.now() + step.timeout_s
            self.store.step_started(run_id, idx, step.type, step.name, round(started, 3))
            self._emit("StepStarted", run_id=run_id, index=idx, type=step.type, name=step.name)
            log.info("step_started", run_id=run_id, step=step.name, index=idx)
            outcome = StepOutcome(step.type, step.name, "aborted", started, None)
            try:
                await run_step(ctx, step)
                outcome = StepOutcome(step.type, step.name, "completed", started, self.t_run())
            except (StepFailed, SafetyStop) as exc:
                outcome = StepOutcome(
                    step.type, step.name, "failed", started, self.t_run(), str(exc)
                )
                raise
            except BaseException as exc:
                outcome = StepOutcome(
                    step.type,
                    step.name,
                    "aborted",
                    started,
                    self.t_run(),
                    self._abort_reason or repr(exc),
                )
                raise
            finally:
                outcomes.append(outcome)
                end = outcome.ended_t_s if outcome.ended_t_s is not None else self.t_run()
                self.store.step_ended(run_id, idx, outcome.result, round(end, 3), outcome.detail)
                self._emit(
                    "StepCompleted",
                    run_id=run_id,
                    index=idx,
                    type=step.type,
                    name=step.name,
                    result=outcome.result,
                    duration_s=round(end - started, 3),
                    detail=outcome.detail,
                )
            if kind.cools:
                self._in_heat_phase = False
        ctx.deadline = None

    async def _hold_point(self, before: int) -> None:
        """Between steps: held here, before recipe step ``before``, if a hold was asked for."""
        if self.state is not RunState.HOLDING:
            return
        self._resume.clear()
        # No control loop runs while held, so no lamp may stay lit (a cool step hands its
        # lamps on to the next step; a hold must not inherit them).
        if self.ctx is not None:
            await self.ctx.disable_lamps()
            self.ctx.controller = None
        self._fire(Trigger.HOLD_REACHED)
        log.info("held", run_id=self.run_id, before_step=before + 1, by=self._hold_by)
        run_id = self.run_id
        assert run_id is not None
        hold = self.store.hold_started(
            run_id,
            before_step=before,
            requested_t_s=round(self._hold_t, 3),
            requested_by=self._hold_by,
            held_t_s=round(self.t_run(), 3),
        )
        self._resume_by = ""
        resumed = False
        try:
            await self._resume.wait()
            resumed = self.ctx is None or not self.ctx.aborting  # not woken by a trip
        finally:
            self.store.hold_ended(
                run_id,
                hold,
                t_s=round(self.t_run(), 3),
                by=self._resume_by if resumed else (self._abort_reason or ""),
                result="resumed" if resumed else "aborted",
            )

    def _start_trace(self, run_id: str, samples: list[Sample]) -> Callable[[], None]:
        """Record a sample of every snapshot published from now on; returns ``stop``.

        A monitor callback (``call_on_next``), not a task: it appends a row and, every few,
        writes them; it never waits. It takes each snapshot exactly where a task awaiting
        ``monitor.next()`` would (the same place in the loop's queue, after and before the
        same consumers), so a sample's step and setpoint are the same (docs/adr/0125).
        """
        monitor = self.monitor
        self._flushed = 0
        last_commit = time.monotonic()
        pending: NextCall | None = None
        stopped = False

        def on_snapshot() -> None:
            nonlocal last_commit, pending
            if stopped:
                return
            snap = monitor.latest
            assert snap is not None
            try:
                samples.append(self._sample(snap))
                if (
                    len(samples) - self._flushed >= TRACE_FLUSH_EVERY
                    and time.monotonic() - last_commit >= TRACE_FLUSH_WALL_S
                ):
                    self.store.add_samples(run_id, samples[self._flushed :])
                    self._flushed = len(samples)
                    last_commit = time.monotonic()
            except Exception:
                # As the trace task it replaces: the trace stops, the run goes on; what is not
                # yet written is written (or fails) once more at the end of the run.
                log.exception("trace_failed", run_id=run_id)
                return
            pending = monitor.call_on_next(on_snapshot)

        def follow() -> None:
            nonlocal pending
            if not stopped:
                pending = monitor.call_on_next(on_snapshot)

        # Queued as a new task's first step is: the trace starts following where it did.
        first = asyncio.get_running_loop().call_soon(follow)

        def stop() -> None:
            nonlocal stopped
            stopped = True
            first.cancel()
            if pending is not None:
                pending.cancel()

        return stop

    def _sample(self, snap: Snapshot) -> Sample:
        ctx = self.ctx
        stage = snap.stage
        # The daemon's estimates (UV dose, dispensed volume, cure conversion) are a lead-lift
        # recipe's: nothing else reads them (its steps, these columns, the progress line), so
        # a bond run does not integrate them on every snapshot.
        est = ctx.estimates if ctx is not None and isinstance(ctx.recipe, LeadLiftRecipe) else None
        if est is not None:
            est.update(snap)
        # Reading.ok and the snapshot's accessors (pressure_mbar, o2_ppm, lamp_mean_pct)
        # inlined, the same expressions: every channel, every sample.
        ok = Status.OK
        p, o2, lamps = snap.pressure, snap.o2, snap.lamp_pct
        temps = {ch: (r.value if r.status is ok else None) for ch, r in snap.temps.items()}
        if ctx is not None and ctx.site_estimates:
            temps.update(ctx.site_estimates)  # marked ``_est``: a panel's model (ADR 0166)
        if stage is not None:
            pos, force = stage.position_um, stage.force_n
            z_um = pos.value if pos.status is ok else None
            z_force_n = force.value if force.status is ok else None
        else:
            z_um = z_force_n = None
        return Sample(
            t_s=round(snap.t - self._run_t0, 3),
            step=self.current_step or "",
            setpoint_c=ctx.setpoint_c if ctx is not None else None,
            temps_c=temps,
            pressure_mbar=p.value if p is not None and p.status is ok else None,
            o2_ppm=o2.value if o2 is not None and o2.status is ok else None,
            lamp_pct=sum(lamps) / len(lamps) if lamps else 0.0,
            z_um=z_um,
            lamp_zones_pct=lamps,
            z_force_n=z_force_n,
            uv_mw_cm2=ProcessEstimates.irradiance(snap) if snap.uv is not None else None,
            uv_dose_mj_cm2=est.uv_dose_mj_cm2 if est is not None else None,
            cure_conversion=est.cure_conversion if est is not None else None,
            dispensed_ul=est.dispensed_ul if est is not None else None,
        )
