"""The interlock monitor: the software safety layer that does not depend on the executor.

Its own task evaluates every rule (daemon/safety/rules.py) on each fresh snapshot
of the monitor, and trips on its own when no fresh snapshot comes. A trip is latched: the
lamps go to 0 % and the contactor opens at once, from this task, before anyone is told;
then the listener (the executor) aborts the run and completes the safe state. If the
executor hangs, the outputs are off all the same; if this task or the whole daemon hangs,
the I/O coupler's watchdog drops them (docs/safety.md, "Layers").
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from daemon.config import Limits
from daemon.machine.monitor import Monitor
from daemon.safety.findings import SEVERITY, Action, Finding
from daemon.safety.rules import RuleEngine
from daemon.safety.run_view import RunView
from daemon.safety.safe_state import SafeStatePlan, outputs_off
from drivers.clock import Clock
from drivers.errors import DeviceError
from drivers.protocols import Machine

log = structlog.get_logger(__name__)

Listener = Callable[[str, dict[str, Any]], None]


class InterlockLatched(Exception):
    """A reset was asked for while a tripped condition is still present."""


@dataclass(frozen=True, slots=True)
class Alarm:
    code: str
    severity: str
    action: str
    message: str
    t: float  # clock time raised


class Interlocks:
    def __init__(self, machine: Machine, clock: Clock, monitor: Monitor, limits: Limits) -> None:
        self.machine = machine
        self.clock = clock
        self.monitor = monitor
        self.limits = limits
        self.rules = RuleEngine(limits)
        # A hang is a wall-time event: under --speed X a scheduling hiccup of a few ms is X times
        # longer in clock time, and must not pass for a dead monitor. Virtual time (tests) has
        # no hiccups and keeps the limit as configured.
        speed = clock.speed
        self.stale_s = limits.snapshot_stale_s * (speed if math.isfinite(speed) else 1.0)
        self.trip: Alarm | None = None  # the latched trip, until an operator reset
        self.active: dict[str, Alarm] = {}  # alarms raised and not cleared
        self.vent_now = False
        self.last_cycle_t: float | None = None
        self.cycles = 0
        self._listeners: list[Listener] = []
        self.on_trip: Callable[[Alarm], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_findings: list[Finding] = []

    # ---- wiring ------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _emit(self, event: str, alarm: Alarm) -> None:
        payload = {
            "code": alarm.code,
            "severity": alarm.severity,
            "action": alarm.action,
            "message": alarm.message,
        }
        for listener in self._listeners:
            try:
                listener(event, payload)
            except Exception:  # a broken listener must not stop the interlocks
                log.exception("interlock_listener_failed", event_name=event)

    def arm(self, run: RunView) -> None:
        """A run starts: the run-specific rules apply from the next snapshot."""
        self.rules.arm(run)

    def disarm(self) -> None:
        self.rules.disarm()
        for code in [c for c, a in self.active.items() if a.action != Action.TRIP]:
            self._emit("AlarmCleared", self.active.pop(code))

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> asyncio.Task[None]:
        if self.running:
            assert self._task is not None
            return self._task
        self._task = asyncio.create_task(self.run(), name="interlocks")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def healthy(self, now: float | None = None) -> bool:
        """The loop has completed a cycle recently (for the systemd watchdog ping)."""
        now = self.clock.now() if now is None else now
        return (
            self.running
            and self.last_cycle_t is not None
            and now - self.last_cycle_t <= self.stale_s
        )

    # ---- what the steps ask ------------------------------------------------------------
    def dead_zones(self) -> frozenset[int]:
        """The lamp zones the rules found dead this run (0-based)."""
        return self.rules.dead_zones

    def lamp_inhibit(self) -> str | None:
        """Why the lamps must stay at 0 % now, or None when they may be on."""
        if self.trip is not None:
            return f"interlock {self.trip.code}: {self.trip.message}"
        for f in self._last_findings:
            if f.action is Action.SUSPEND:
                return f"suspended by interlock {f.code}: {f.message}"
        return None

    def safe_state_plan(self) -> SafeStatePlan:
        return SafeStatePlan(vent_now=self.vent_now)

    # ---- operator reset ----------------------------------------------------------------
    def reset(self) -> None:
        """Clear the latched trip; refused while its condition is still present."""
        if self.trip is None:
            return
        snap = self.monitor.latest
        if snap is None or self.clock.now() - snap.t > self.stale_s:
            raise InterlockLatched("reset refused: no fresh reading of the machine to check")
        still = [f for f in self.rules.evaluate(snap) if f.action is Action.TRIP]
        if still:
            raise InterlockLatched(
                "reset refused: "
                + "; ".join(f"{f.code} ({f.message})" for f in still)
                + " — remove the cause first"
            )
        tripped = self.trip
        self.trip = None
        self.vent_now = False
        self.active.pop(tripped.code, None)
        self._emit("AlarmCleared", tripped)
        log.warning("interlock_reset", code=tripped.code)

    # ---- the loop ----------------------------------------------------------------------
    async def run(self) -> None:
        """Evaluate the rules on every fresh snapshot until cancelled.

        Rules are plain functions, so a cycle takes no await unless it acts; the loop is back
        waiting before the next snapshot even under virtual time. A snapshot that arrived
        while a cycle was acting (a trip's device writes) is taken at once, not skipped.
        """
        stale = asyncio.create_task(self._watch_stale(), name="interlocks-stale")
        # Wall time: a stalled event loop stops the clock-time checks too (a paced simulated
        # clock does not even advance), and the monitor's next cycle then looks fresh.
        stall = (
            asyncio.create_task(self._watch_loop(), name="interlocks-loop")
            if math.isfinite(self.clock.speed)
            else None
        )
        try:
            snap = await self.monitor.next()
            while True:
                findings = self.rules.evaluate(snap)
                if findings or self.active:
                    await self.apply(findings)
                else:  # apply's own early return, without a coroutine: nearly every snapshot
                    self._last_findings = findings
                self.last_cycle_t = self.clock.now()
                self.cycles += 1
                latest = self.monitor.latest
                if latest is not None and latest.t > snap.t:
                    snap = latest
                else:
                    snap = await self.monitor.next()
        finally:
            stale.cancel()
            if stall is not None:
                stall.cancel()
            await asyncio.gather(stale, *([stall] if stall else []), return_exceptions=True)

    async def _watch_loop(self) -> None:
        """Trip when the event loop itself stalled longer than the staleness limit (wall time):
        nothing was read, controlled or watched meanwhile, and it must not pass silently."""
        loop = asyncio.get_running_loop()
        limit = self.limits.snapshot_stale_s
        period = min(0.1, limit / 4)
        last = loop.time()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            stalled, last = now - last - period, now
            if stalled > limit:
                log.error("control_loop_stalled", stalled_s=round(stalled, 3), limit_s=limit)
                await self._trip(
                    [
                        Finding(
                            "loop_stalled",
                            Action.TRIP,
                            f"the control loop stalled for {stalled:.1f} s (limit {limit:g} s, "
                            "limits.snapshot_stale_s): nothing was controlled meanwhile",
                        )
                    ]
                )

    async def _watch_stale(self) -> None:
        """Trip when the monitor stops producing snapshots (staleness is itself a rule)."""
        limit = self.stale_s
        while True:
            await self.clock.sleep(limit / 4)
            latest = self.monitor.latest
            age = None if latest is None else self.clock.now() - latest.t
            if age is None or age > limit:
                what = "no reading yet" if age is None else f"last one {age:.1f} s old"
                await self._trip(
                    [
                        Finding(
                            "monitor_stale",
                            Action.TRIP,
                            f"no fresh reading of the machine ({what})",
                        )
                    ]
                )

    async def _trip(self, trips: list[Finding]) -> None:
        if not trips or self.trip is not None:
            return
        first = trips[0]
        now = self.clock.now()
        # Latched before the first await: from here on no step may switch the lamps on.
        self.trip = Alarm(first.code, SEVERITY[Action.TRIP], first.action, first.message, now)
        self.vent_now = any(f.vent_now for f in trips)
        await asyncio.shield(outputs_off(self.machine))
        log.error("interlock_trip", code=first.code, message=first.message)
        self.active[first.code] = self.trip
        self._emit("AlarmRaised", self.trip)
        if self.on_trip is not None:
            try:
                self.on_trip(self.trip)
            except Exception:  # the outputs are off already; keep watching
                log.exception("interlock_on_trip_failed")

    async def apply(self, findings: list[Finding]) -> None:
        self._last_findings = findings
        if not findings and not self.active:
            return  # nothing to trip, raise or clear: nearly every snapshot
        await self._trip([f for f in findings if f.action is Action.TRIP])
        present = {f.code: f for f in findings if f.action is not Action.TRIP}
        for code, f in present.items():
            if code not in self.active:
                alarm = Alarm(code, SEVERITY[f.action], f.action, f.message, self.clock.now())
                self.active[code] = alarm
                log.warning("interlock_alarm", code=code, message=f.message)
                self._emit("AlarmRaised", alarm)
        for code in [
            c for c, a in self.active.items() if a.action != Action.TRIP and c not in present
        ]:
            self._emit("AlarmCleared", self.active.pop(code))
        if self.trip is None and any(f.action is Action.SUSPEND for f in findings):
            # A suspension holds the lamps at 0 % but keeps the contactor as it is, so heating
            # resumes without a new enable sequence once the condition clears.
            m = self.machine
            try:
                await asyncio.wait_for(m.lamps.set_power([0.0] * m.lamps.zones, 0.5), 1.0)
            except (DeviceError, TimeoutError) as exc:  # the next cycle tries again
                log.error("interlock_suspend_failed", error=str(exc))
