"""`bonderd serve`: the daemon the line runs (CONTRACT.md, docs/mqtt.md, ADRs 0010–0013).

Start-up: devices connected in parallel (every failure reported together), then every
output that emits energy or moves switched off before anything else happens; then the
store (which records a run interrupted by a crash as aborted), the rest of the safe-state
sequence if a run was interrupted, READY to systemd, and the long-lived tasks: monitor,
MQTT link, watch folder, telemetry, watchdog. A run is one more task while it lasts.

Stop (SIGTERM / SIGINT): any run is aborted into the safe state and awaited, the outbox
is drained, the final state and ``offline`` are published, the records are closed, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import tomllib
from collections.abc import Awaitable, Callable
from typing import Any, Final

import structlog

from daemon.app.event_loop import new_event_loop
from daemon.app.hmi.server import HmiServer
from daemon.app.hmi.station import Station
from daemon.app.sdnotify import Notifier
from daemon.config import ConfigError, Settings, serve_path_problems
from daemon.errors import CommandRefused
from daemon.machine.factory import close_all
from daemon.mes.controller import Controller
from daemon.mes.library import RecipeLibrary
from daemon.mes.mqtt import MqttLink, tls_problems
from daemon.mes.outbox import CommandLog, KeyValues, Outbox, ServeDb, utc_now
from daemon.mes.watch_folder import WatchFolder
from daemon.recipe.worker import RecipeWorker
from daemon.run.rig import FaultScenario, Rig, assemble, clock_for
from daemon.run.run_state import ACTIVE
from daemon.safety.safe_state import enter_safe_state, outputs_off
from daemon.store.records import INTERRUPTED_REASON, RunRecord
from daemon.store.summary import iso_utc
from drivers.clock import Clock

log = structlog.get_logger(__name__)

EXIT_OK, EXIT_FAILED = 0, 1
RESTART_DELAY_S: Final = 1.0  # before a failed service task (MQTT, watch folder) is restarted
# Solidus assumed when the interrupted run's recipe cannot be read: low, so the safe state
# waits longer rather than venting a molten joint.
FALLBACK_SOLIDUS_C: Final = 100.0
GIL_SWITCH_S: Final = 0.001
STATUS_REFRESH_S: Final = 10.0  # wall seconds between STATUS= refreshes (loop lateness)
# serve_state key: the interrupted runs whose RunCompleted has been sent (sent once, ever).
REPORTED_INTERRUPTED: Final = "interrupted_runs_reported"


# ---- the supervisor -----------------------------------------------------------------------


def check_start_up(settings: Settings) -> None:
    """Refuse, naming the key and the path, what would otherwise fail later and over again:
    a data_dir or watch_dir that is a file, a TLS file that is missing or unreadable."""
    problems = serve_path_problems(settings) + tls_problems(settings.mqtt)
    if problems:
        raise ConfigError(problems)


def interrupted_result(run: RunRecord) -> dict[str, Any]:
    """The RunCompleted payload of a run found interrupted at start-up: the result document
    as far as the records know it (no conformance, no metrics: the run was never judged)."""

    def duration(step: Any) -> float | None:
        end = step.ended_t_s
        return None if end is None else round(max(0.0, end - step.started_t_s), 3)

    return {
        "run_id": run.run_id,
        "recipe": {
            "name": run.recipe_name,
            "version": run.recipe_version,
            "sha256": run.recipe_sha256,
        },
        "lot_id": run.lot_id,
        "operator": run.operator,
        "result": "aborted",
        "reason": run.reason,
        "interrupted": True,
        "started_at": iso_utc(run.started_at),
        "ended_at": None,  # unknown: nothing ran to see the end
        "reported_at": utc_now(),
        "steps": [
            {"type": s.type, "name": s.name, "result": s.result, "duration_s": duration(s)}
            for s in run.steps
        ],
        "conformance": [],
        "metrics": {},
    }


def _solidus_of(recipe_text: str) -> float:
    try:
        value = tomllib.loads(recipe_text)["materials"]["solder"]["solidus_c"]
    except (tomllib.TOMLDecodeError, KeyError, TypeError):
        return FALLBACK_SOLIDUS_C
    return float(value) if isinstance(value, int | float) else FALLBACK_SOLIDUS_C


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        sim: bool,
        speed: float,
        seed: int = 0,
        scenario: FaultScenario | None = None,
    ) -> None:
        self.settings = settings
        self.scenario = scenario
        self.sim = sim
        self.clock: Clock = clock_for(sim=sim, speed=speed)
        self.seed = seed
        self.notifier = Notifier()
        self.stop_requested = asyncio.Event()
        self.ctl: Controller | None = None

    def request_stop(self, why: str) -> None:
        if not self.stop_requested.is_set():
            log.warning("stop_requested", why=why)
        self.stop_requested.set()

    async def run(self) -> int:
        # The daemon's plant invariants are the test suite's referee, not the machine's: the
        # interlocks judge every snapshot, as on the machine.
        rig = assemble(
            self.settings,
            sim=self.sim,
            seed=self.seed,
            clock=self.clock,
            check_invariants=False,
            scenario=self.scenario,
        )
        machine = rig.machine
        try:
            self.notifier.status("connecting devices")
            await rig.connect()
            # Before anything else: nothing emits energy or moves until a run asks for it.
            report = await outputs_off(machine)
            log.info("startup_outputs_off", problems=report.problems)
            return await self._serve(rig)
        finally:
            await close_all(machine)
            rig.close()
            self.notifier.close()

    async def _serve(self, rig: Rig) -> int:
        settings = self.settings
        db = ServeDb(settings.data_dir)
        monitor, executor = rig.monitor, rig.executor
        monitor_task = asyncio.create_task(monitor.run(), name="monitor")
        tasks: dict[str, asyncio.Task[None]] = {}
        worker = RecipeWorker()
        try:
            await worker.start()
            await monitor.next()
            ctl = self.ctl = Controller(
                settings=settings,
                rig=rig,
                clock=self.clock,
                monitor=monitor,
                executor=executor,
                store=rig.store,
                outbox=Outbox(db, settings.equipment_id),
                commands=CommandLog(db),
                library=RecipeLibrary(db),
                kv=KeyValues(db),
                notifier=self.notifier,
                recipe_worker=worker,
            )
            # The interlocks watch the machine for the daemon's whole life, not only in runs.
            interlocks_task = executor.interlocks.start()
            await self._after_crash(ctl)
            ctl.link = MqttLink(
                settings.mqtt, settings.equipment_id, ctl.outbox, ctl.handle, ctl.state_doc
            )
            watch = WatchFolder(
                settings.watch_dir,
                settings.limits,
                ctl.on_watch_accepted,
                ctl.on_watch_rejected,
                parse=ctl.gated_parse,
            )
            services = {
                "mqtt": ctl.link.run,
                "watch_folder": watch.run,
                "telemetry": lambda: self._telemetry(ctl),
                "status_line": lambda: self._status_line(ctl),
                "watchdog": lambda: self._watchdog(ctl),
            }
            if settings.hmi.enabled:
                # The operator station, at the rate the MES gets telemetry (ADR 0150).
                hmi = HmiServer(
                    settings.hmi, Station(ctl), period_s=1.0 / settings.mqtt.telemetry_hz
                )
                services["hmi"] = hmi.run
            for name, factory in services.items():
                tasks[name] = asyncio.create_task(self._keep(name, factory), name=name)
            self.notifier.ready(f"ready: equipment {settings.equipment_id}")
            ctl._state_changed()
            log.info("serve_ready", equipment_id=settings.equipment_id, sim=self.sim)

            stop = asyncio.create_task(self.stop_requested.wait(), name="stop-wait")
            try:
                done, _ = await asyncio.wait(
                    [stop, monitor_task, interlocks_task], return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stop.cancel()
            failed = [t for t in (monitor_task, interlocks_task) if t in done]
            for task in failed:
                # Without the monitor or the interlocks nothing watches the machine: energy
                # off, stop, and let systemd restart us (Restart=on-failure).
                exc = task.exception() if not task.cancelled() else None
                log.error("safety_task_failed", task=task.get_name(), error=repr(exc))
            if failed:
                await asyncio.shield(outputs_off(rig.machine))
            await self._shutdown(ctl, tasks, monitor_ok=monitor_task not in done)
            await executor.interlocks.stop()
            return EXIT_FAILED if failed else EXIT_OK
        finally:
            for task in [*tasks.values(), monitor_task]:
                task.cancel()
            await asyncio.gather(*tasks.values(), monitor_task, return_exceptions=True)
            await worker.close()
            if self.ctl is not None:
                await self.ctl.predictor.close()
            db.close()

    async def _after_crash(self, ctl: Controller) -> None:
        latest = ctl.store.list_runs(1)
        if not latest:
            return
        run = latest[0]
        if run.state != "aborted" or run.reason != INTERRUPTED_REASON or run.ended_at is not None:
            return
        reported = list(ctl.kv.get(REPORTED_INTERRUPTED, []))
        if run.run_id in reported or any(a.get("run_id") == run.run_id for a in ctl.alarms):
            return  # reported at an earlier start already
        log.warning("interrupted_run_found", run_id=run.run_id)
        self.notifier.status(f"safe state after interrupted run {run.run_id}")
        report = await enter_safe_state(
            ctl.rig.machine, self.clock, ctl.monitor, solidus_c=_solidus_of(run.recipe_text)
        )
        ctl.raise_alarm(
            "run_interrupted",
            "alarm",
            f"run {run.run_id} was interrupted by a daemon stop or crash and is recorded as "
            "aborted; it is never resumed",
            run_id=run.run_id,
            safe_state_problems=report.problems,
        )
        # The MES books runs by their RunCompleted: one for this run too, once (docs/mqtt.md).
        result = interrupted_result(run)
        ctl.last_result = result
        ctl.emit("RunCompleted", **result)
        ctl.kv.put(REPORTED_INTERRUPTED, [*reported, run.run_id][-100:])

    async def _keep(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        """Run a service forever: a failure is logged and the service restarted."""
        while True:
            try:
                await factory()
                log.error("service_returned", service=name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("service_failed", service=name, restart_in_s=RESTART_DELAY_S)
            await asyncio.sleep(RESTART_DELAY_S)

    async def _telemetry(self, ctl: Controller) -> None:
        period = 1.0 / self.settings.mqtt.telemetry_hz
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            snap = ctl.monitor.latest
            if snap is not None and ctl.link is not None:
                ctl.link.telemetry(ctl.telemetry_doc(snap))
            due = max(due + period, loop.time())
            await asyncio.sleep(due - loop.time())

    async def _status_line(self, ctl: Controller) -> None:
        """Refresh STATUS= so the loop's lateness stays current between state changes."""
        while True:
            await asyncio.sleep(STATUS_REFRESH_S)
            self.notifier.status(ctl.status_line())

    async def _watchdog(self, ctl: Controller) -> None:
        """WATCHDOG=1 only while the monitor delivers snapshots and the interlocks keep up."""
        interval = self.notifier.watchdog_s
        if interval is None:
            await asyncio.Event().wait()  # not asked for: nothing to do, ever
            return
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            # Paced by the monitor: if it stops, so do the pings, and systemd restarts us.
            await ctl.monitor.next()
            now = loop.time()
            if now - last >= interval / 4 and ctl.executor.interlocks.healthy():
                self.notifier.watchdog()
                last = now

    async def _shutdown(
        self, ctl: Controller, tasks: dict[str, asyncio.Task[None]], *, monitor_ok: bool
    ) -> None:
        self.notifier.stopping("stopping: safe state")
        ex = ctl.executor
        if ex.state in ACTIVE:
            with contextlib.suppress(CommandRefused):
                ex.abort("daemon stopping (SIGTERM/SIGINT)", code="shutdown")
        if ctl.run_task is not None and not ctl.run_task.done():
            if monitor_ok:
                await asyncio.gather(ctl.run_task, return_exceptions=True)
            else:
                ctl.run_task.cancel()
                await asyncio.gather(ctl.run_task, return_exceptions=True)
        for name in ("watch_folder", "telemetry", "status_line", "watchdog", "hmi"):
            task = tasks.get(name)
            if task is not None:
                task.cancel()
        if ctl.link is not None:
            await ctl.link.shutdown()
        mqtt_task = tasks.get("mqtt")
        if mqtt_task is not None:
            mqtt_task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        log.info("serve_stopped", state=ex.state.value, events_pending=ctl.outbox.pending_count())


def run_serve(
    settings: Settings,
    *,
    sim: bool,
    speed: float,
    seed: int = 0,
    scenario: FaultScenario | None = None,
) -> int:
    """`bonderd serve` on the event loop built for the control loop (daemon/app/event_loop.py)."""
    # A worker thread (a finished run's judgement, ADR 0097) holds the GIL for at most this
    # long once the loop wants it; the interpreter's default, 5 ms, is a tenth of a period.
    check_start_up(settings)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_S)
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(serve(settings, sim=sim, speed=speed, seed=seed, scenario=scenario))
    finally:
        sys.setswitchinterval(switch)


async def serve(
    settings: Settings,
    *,
    sim: bool,
    speed: float,
    seed: int = 0,
    scenario: FaultScenario | None = None,
) -> int:
    daemon = Daemon(settings, sim=sim, speed=speed, seed=seed, scenario=scenario)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, daemon.request_stop, sig.name)
    try:
        return await daemon.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
