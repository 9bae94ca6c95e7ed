"""The command controller: one path for every command, whoever sends it (docs/mqtt.md).

The MQTT link, the watch folder and any local station hand their input here: the same
argument models, state rules, error codes and events for all of them, with the origin
recorded. It owns the daemon's state document (state, control, E10, alarms) and the
telemetry document; the supervisor (``daemon.app.serve``) assembles it and keeps it running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import structlog
from pydantic import ValidationError

from daemon import __version__
from daemon.config import Limits, Settings
from daemon.errors import CommandRefused
from daemon.machine.monitor import Monitor, Snapshot
from daemon.mes.commands import (
    ARGS,
    ENVELOPE_KEYS,
    AbortArgs,
    AckAlarmArgs,
    CommandError,
    GetReportArgs,
    HoldArgs,
    ListRunsArgs,
    NoArgs,
    PredictArgs,
    PutRecipeArgs,
    StartArgs,
    encodable,
    field_errors,
    surrogate_problem,
)
from daemon.mes.library import LibraryEntry, RecipeLibrary, library_source
from daemon.mes.mqtt import MqttLink, Origin
from daemon.mes.outbox import CommandLog, KeyValues, Outbox, safe_text, utc_now
from daemon.mes.twin_gate import TwinGate, issues, refusal_text
from daemon.mes.watch_folder import Rejection
from daemon.recipe.load import LoadedRecipe, RecipeInvalid, parse_recipe
from daemon.recipe.worker import RecipeWorker
from daemon.report import write_report
from daemon.run.executor import Executor
from daemon.run.predict_worker import PredictWorker
from daemon.run.rig import Rig
from daemon.run.run_state import ACTIVE, RunState
from daemon.safety.safe_state import outputs_off
from daemon.store.records import RunStore, UnknownRun
from daemon.store.summary import run_summary
from drivers.clock import Clock

log = structlog.get_logger(__name__)

START_TIMEOUT_S: Final = 10.0
# Read-only: answered in local control too, and in every run state.
READ_ONLY_COMMANDS: Final = frozenset(
    {"status", "list_recipes", "list_runs", "get_report", "predict"}
)
# What the operator station may do only in local control (abort it may always).
STATION_NEEDS_LOCAL: Final = frozenset({"start", "hold", "resume"})
REPORTS_DIR: Final = "reports"  # under data_dir: where `get_report` writes the HTML


class StatusSink(Protocol):
    """Where the one-line status goes (systemd's STATUS= in the daemon)."""

    def status(self, status: str) -> object: ...


def _list_runs(data_dir: Path, limit: int) -> list[dict[str, Any]]:
    # A store of its own: RunStore's SQLite connection belongs to the thread that opened it,
    # and the daemon's is the event loop's (the same as `bonderd report` beside the daemon).
    with RunStore(data_dir) as store:
        return [run_summary(r) for r in store.list_runs(limit)]


def _render_report(data_dir: Path, run_id: str) -> tuple[Path, str]:
    with RunStore(data_dir) as store:
        path = write_report(store, run_id, data_dir / REPORTS_DIR)
    return path, path.read_text(encoding="utf-8")


def _who(operator: str | None, origin: Origin) -> str:
    """``ana (local operator)``, ``the MES``: who a hold or resume is recorded as from."""
    where = {"local": "local operator", "station": "operator station"}.get(origin, "MES")
    return f"{operator} ({where})" if operator else f"the {where}"


def _reply(
    command_id: Any, *, result: Any = None, error: tuple[str, str] | None = None
) -> dict[str, Any]:
    return {
        "command_id": command_id,
        "ok": error is None,
        "result": result,
        "error": None if error is None else {"code": error[0], "message": error[1]},
    }


# ---- the controller: state, commands, events ----------------------------------------------


@dataclass
class Controller:
    settings: Settings
    rig: Rig
    clock: Clock
    monitor: Monitor
    executor: Executor
    store: RunStore
    outbox: Outbox
    commands: CommandLog
    library: RecipeLibrary
    kv: KeyValues
    notifier: StatusSink
    # Where recipes are parsed and validated: a worker process in the daemon (ADR 0140);
    # None parses in-line (tests that construct a controller of their own).
    recipe_worker: RecipeWorker | None = None
    # Where predictions run: a nice-19 child process, started at the first (ADR 0171).
    predictor: PredictWorker = field(default_factory=PredictWorker)
    link: MqttLink | None = None
    run_task: asyncio.Task[None] | None = None
    control: Literal["remote", "local"] = "remote"
    alarms: list[dict[str, Any]] = field(default_factory=list)
    recipe: dict[str, Any] | None = None
    last_result: dict[str, Any] | None = None
    _start_refused: str | None = None
    _run_started: asyncio.Event = field(default_factory=asyncio.Event)
    # A start is checked (parsed, predicted) before the run exists; an abort that arrives
    # meanwhile, on the MQTT side path or from the station, must still stop it (ADR 0174).
    _start_in_flight: bool = False
    _abort_during_start: str | None = None
    gate: TwinGate = field(init=False)

    def __post_init__(self) -> None:
        self.gate = TwinGate(self.settings, self.predictor, self.kv)
        self.control = "local" if self.kv.get("control", "remote") == "local" else "remote"
        self.alarms = list(self.kv.get("alarms", []))
        self.executor.subscribe(self._on_executor_event)

    # ---- state ---------------------------------------------------------------------------
    def e10(self) -> str:
        """SEMI E10 state (docs/mqtt.md): the equipment's time category, as the MES books it."""
        state = self.executor.state
        if self.control == "local":
            return "ENG"
        if state in ACTIVE:
            return "PRD"
        if any(a.get("severity") == "alarm" for a in self.alarms):
            return "UDT"
        return "SBY"

    def state_doc(self) -> dict[str, Any]:
        ex = self.executor
        idle = ex.state is RunState.IDLE
        return {
            "state": ex.state.value,
            "control": self.control,
            "e10": self.e10(),
            "run_id": None if idle else ex.run_id,
            "recipe": None if idle else self.recipe,
            "step": ex.current_step,
            "alarms": list(self.alarms),
            "ts": utc_now(),
        }

    def control_loop_doc(self) -> dict[str, Any]:
        """The control loop's health for a maintenance tech: its period, the cycles that
        overran, and how late cycles started over the last minute (docs/adr/0071)."""
        m = self.monitor
        return {"period_ms": round(m.period_s * 1000.0, 3), "overruns": m.overruns} | dict(
            m.jitter.summary()
        )

    def status_line(self) -> str:
        """The sd_notify STATUS= text (`systemctl status bonderd` shows it)."""
        doc = self.state_doc()
        p99 = self.monitor.jitter.percentile(0.99)
        return (
            f"state={doc['state']} control={doc['control']} e10={doc['e10']}"
            + (f" run={doc['run_id']} step={doc['step']}" if doc["run_id"] else "")
            + (f" loop_late_p99={p99 * 1000.0:.2f}ms" if p99 is not None else "")
            + f" overruns={self.monitor.overruns}"
        )

    def _state_changed(self) -> None:
        self.notifier.status(self.status_line())
        if self.link is not None:
            self.link.state_changed()

    # ---- events --------------------------------------------------------------------------
    def emit(self, event: str, **fields: Any) -> None:
        """Write the event to the outbox (durable, numbered) and wake the publisher."""
        self.outbox.append(event, fields)
        if self.link is not None:
            self.link.events_pending()

    def _on_executor_event(self, event: str, payload: dict[str, Any]) -> None:
        if event == "RunStarted":
            self.recipe = payload.get("recipe")
            self._run_started.set()
        elif event == "AlarmRaised":
            alarm = {k: payload.get(k) for k in ("code", "severity", "message", "run_id", "step")}
            alarm["raised_at"] = utc_now()
            self.alarms.append(alarm)
            self.kv.put("alarms", self.alarms)
        elif event == "AlarmCleared":
            # The interlocks cleared it (condition gone, or reset): no longer active.
            self.alarms = [a for a in self.alarms if a.get("code") != payload.get("code")]
            self.kv.put("alarms", self.alarms)
        elif event == "RunCompleted":
            self.last_result = payload
        self.emit(event, **payload)
        if event in ("StateChanged", "StepStarted", "AlarmRaised", "AlarmCleared", "RunCompleted"):
            self._state_changed()

    def raise_alarm(self, code: str, severity: str, message: str, **extra: Any) -> None:
        alarm = {"code": code, "severity": severity, "message": message, **extra}
        alarm["raised_at"] = utc_now()
        self.alarms.append(alarm)
        self.kv.put("alarms", self.alarms)
        self.emit("AlarmRaised", **alarm)
        self._state_changed()

    # ---- recipes -------------------------------------------------------------------------
    def accept_recipe(self, loaded: LoadedRecipe, source: str) -> LibraryEntry:
        entry = self.library.add(loaded, source)
        # The twin gate's prediction, made before (gated_parse, _gated): an extra field.
        extra = {} if self.gate.mode == "off" else {"prediction": self.gate.cached(loaded)}
        self.emit(
            "RecipeAccepted",
            name=entry.name,
            version=entry.version,
            sha256=entry.sha256,
            source=source,
            new_version=entry.new,
            **extra,
        )
        return entry

    def reject_recipe(self, source: str, errors: list[dict[str, str]], **extra: Any) -> None:
        self.emit("RecipeRejected", source=source, errors=errors, **extra)

    def on_watch_rejected(self, rejection: Rejection) -> None:
        self.reject_recipe(f"watch:{rejection.file}", rejection.errors, moved_to=rejection.moved_to)

    def on_watch_accepted(self, loaded: LoadedRecipe, name: str) -> None:
        self.accept_recipe(loaded, f"watch:{name}")

    async def parse(self, data: bytes, source: str) -> LoadedRecipe:
        """Parse and validate off the control loop (the worker); raises RecipeInvalid."""
        if self.recipe_worker is None:
            return parse_recipe(data, source, self.settings.limits)
        return await self.recipe_worker.parse(data, source, self.settings.limits)

    async def gated_parse(self, data: bytes, name: str, limits: Limits) -> LoadedRecipe:
        """The watch folder's parse: validation, then the twin gate; a predicted failure
        under "refuse" is an invalid recipe (moved to rejected/ with the failing checks)."""
        if self.recipe_worker is not None:
            loaded = await self.recipe_worker.parse(data, name, limits)
        else:
            loaded = parse_recipe(data, name, limits)
        prediction = await self.gate.predict(loaded, f"watch:{name}")
        if self.gate.refuses(prediction):
            assert prediction is not None
            raise RecipeInvalid(issues(name, prediction))
        return loaded

    async def _gated(self, loaded: LoadedRecipe, source: str) -> dict[str, Any] | None:
        """The twin gate for a recipe about to enter the library; raises predicted_failure."""
        prediction = await self.gate.predict(loaded, source)
        if self.gate.refuses(prediction):
            assert prediction is not None
            errors = [{"field": i.field, "reason": i.reason} for i in issues(source, prediction)]
            self.reject_recipe(source, errors)
            raise CommandError("predicted_failure", refusal_text(prediction))
        return prediction

    async def _parse_inline(self, text: str, source: str) -> LoadedRecipe:
        try:
            return await self.parse(text.encode("utf-8"), source)
        except RecipeInvalid as exc:
            errors = [{"field": i.field, "reason": i.reason} for i in exc.issues]
            self.reject_recipe(source, errors)
            raise CommandError(
                "recipe_invalid", "; ".join(f"{i.field}: {i.reason}" for i in exc.issues)
            ) from exc

    # ---- commands ------------------------------------------------------------------------
    async def handle(self, raw: bytes, origin: Origin) -> dict[str, Any]:
        """Answer one command payload; never raises (a bug becomes an ``internal_error``)."""
        try:
            text = raw.decode("utf-8")
            doc = json.loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            return _reply(None, error=("malformed_json", f"payload is not UTF-8 JSON: {exc}"))
        if not isinstance(doc, dict):
            return _reply(None, error=("invalid_payload", "payload must be a JSON object"))
        command_id = doc.get("command_id")
        if "command_id" not in doc:
            return _reply(None, error=("missing_field", "command_id: required field is missing"))
        if not isinstance(command_id, str) or not 0 < len(command_id) <= 128:
            return _reply(
                None,
                error=("invalid_field", "command_id: must be text of 1 to 128 characters"),
            )
        if not encodable(command_id):
            # Answered (the reply spells it as JSON escapes), never recorded: it cannot be a
            # key of the command log, and a refusal executes nothing to be repeated.
            problem = surrogate_problem({"command_id": command_id})
            return _reply(command_id, error=("invalid_field", problem or "command_id: invalid"))
        previous = self.commands.reply_for(command_id)
        if previous is not None:
            log.info("command_repeated", command_id=command_id)
            return previous
        command = doc.get("command")
        try:
            reply = _reply(command_id, result=await self._execute(doc, origin))
        except CommandError as exc:
            reply = _reply(command_id, error=(exc.code, exc.message))
        except Exception as exc:
            log.exception("command_failed", command_id=command_id)
            reply = _reply(command_id, error=("internal_error", f"{type(exc).__name__}: {exc}"))
        self.commands.record(command_id, safe_text(str(command)[:64]), reply)
        log.info(
            "command",
            command=command,
            command_id=command_id,
            origin=origin,
            ok=reply["ok"],
            error=reply["error"],
        )
        return reply

    async def _execute(self, doc: dict[str, Any], origin: Origin) -> Any:
        problem = surrogate_problem(doc)
        if problem is not None:
            raise CommandError("invalid_field", problem)
        extra = sorted(set(doc) - ENVELOPE_KEYS)
        if extra:
            raise CommandError("invalid_payload", f"unknown field(s): {', '.join(extra)}")
        if "command" not in doc:
            raise CommandError("missing_field", "command: required field is missing")
        command = doc["command"]
        if not isinstance(command, str) or command not in ARGS:
            raise CommandError(
                "unknown_command",
                f"unknown command {json.dumps(command)[:80]}; known: {', '.join(ARGS)}",
            )
        raw_args = doc.get("args", {})
        if raw_args is None:
            raw_args = {}
        if not isinstance(raw_args, dict):
            raise CommandError("invalid_field", "args: must be a JSON object")
        try:
            args = ARGS[command].model_validate(raw_args)
        except ValidationError as exc:
            raise CommandError(*field_errors(exc)) from exc
        if command in ("take_control", "release_control"):
            if origin == "remote":
                raise CommandError(
                    "not_allowed",
                    f"{command} is only accepted from the machine's local operator "
                    "(topic …/cmd/local)",
                )
            return self._set_control("local" if command == "take_control" else "remote")
        if origin == "station" and self.control == "remote" and command in STATION_NEEDS_LOCAL:
            # The MES runs the machine: the station may stop it (abort), not run it.
            raise CommandError(
                "not_allowed",
                f"{command} refused: the machine is in remote control (the MES runs it); "
                "take local control at the station first",
            )
        if origin == "remote" and self.control == "local" and command not in READ_ONLY_COMMANDS:
            raise CommandError(
                "local_control",
                f"{command} refused: the machine is in local control; the operator at the "
                "machine must release it",
            )
        handler = getattr(self, f"_cmd_{command}")
        return await handler(args, origin)

    def _set_control(self, mode: Literal["remote", "local"]) -> dict[str, Any]:
        if self.control != mode:
            old, self.control = self.control, mode
            self.kv.put("control", mode)
            self.emit("StateChanged", control=mode, old_control=old)
            self._state_changed()
        return {"control": self.control}

    async def _cmd_status(self, _args: NoArgs, _origin: Origin) -> dict[str, Any]:
        doc = self.state_doc()
        doc["last_result"] = (
            {k: self.last_result.get(k) for k in ("run_id", "result", "reason")}
            if self.last_result
            else None
        )
        doc["software_version"] = __version__
        doc["events_pending"] = self.outbox.pending_count()
        doc["last_seq"] = self.outbox.last_seq()
        doc["control_loop"] = self.control_loop_doc()
        return doc

    async def _cmd_list_recipes(self, _args: NoArgs, _origin: Origin) -> dict[str, Any]:
        return {"recipes": [e.as_dict() for e in self.library.latest()]}

    async def _cmd_list_runs(self, args: ListRunsArgs, _origin: Origin) -> dict[str, Any]:
        # Off the loop: reading up to 500 runs with their steps must not delay the control loop.
        runs = await asyncio.to_thread(_list_runs, self.settings.data_dir, args.limit)
        return {"runs": runs}

    async def _cmd_get_report(self, args: GetReportArgs, _origin: Origin) -> dict[str, Any]:
        # Rendering reads the whole trace and draws the charts: seconds for a long run, so in
        # a thread; the control loop and the interlocks keep their period meanwhile.
        try:
            path, html = await asyncio.to_thread(
                _render_report, self.settings.data_dir, args.run_id
            )
        except UnknownRun as exc:
            raise CommandError("unknown_run", f"no run {args.run_id!r} in the records") from exc
        return {"run_id": args.run_id, "path": str(path), "html": html}

    async def _cmd_predict(self, args: PredictArgs, _origin: Origin) -> dict[str, Any]:
        if args.recipe_toml is not None:
            text, source = args.recipe_toml, "recipe_toml"
        else:
            assert args.recipe is not None
            stored = self.library.text(args.recipe, args.version)
            if stored is None:
                which = f" version {args.version}" if args.version else ""
                raise CommandError(
                    "unknown_recipe", f"no recipe {args.recipe!r}{which} in the library"
                )
            text, version = stored
            source = library_source(args.recipe, version)
        try:
            # Read-only: an invalid text is answered, not recorded as a rejected recipe.
            await self.parse(text.encode("utf-8"), source)
        except RecipeInvalid as exc:
            raise CommandError(
                "recipe_invalid", "; ".join(f"{i.field}: {i.reason}" for i in exc.issues)
            ) from exc
        return await self.predictor.predict(text, source, self.settings, args.seeds)

    async def _cmd_put_recipe(self, args: PutRecipeArgs, origin: Origin) -> dict[str, Any]:
        source = "station:put_recipe" if origin == "station" else f"mqtt:{origin}:put_recipe"
        loaded = await self._parse_inline(args.recipe_toml, source)
        if loaded.recipe.name != args.name:
            errors = [
                {
                    "field": "name",
                    "reason": f"the recipe is named {loaded.recipe.name!r}, not {args.name!r}",
                }
            ]
            self.reject_recipe(source, errors)
            raise CommandError("recipe_invalid", f"name: {errors[0]['reason']}")
        prediction = await self._gated(loaded, source)
        entry = self.accept_recipe(loaded, source)
        extra = {} if self.gate.mode == "off" else {"prediction": prediction}
        return {**entry.as_dict(), "new_version": entry.new, **extra}

    async def _cmd_start(self, args: StartArgs, origin: Origin) -> dict[str, Any]:
        if self.executor.state is not RunState.IDLE:
            raise CommandError(
                "not_allowed", f"start refused: the machine is {self.executor.state}, not idle"
            )
        if self.run_task is not None and not self.run_task.done():
            raise CommandError("not_allowed", "start refused: the previous run is still ending")
        refusal = self.executor.start_refusal()
        if refusal is not None:
            raise CommandError("not_allowed", refusal)
        if self._start_in_flight:
            raise CommandError("not_allowed", "start refused: another start is being checked")
        self._start_in_flight, self._abort_during_start = True, None
        try:
            return await self._start_checked(args, origin)
        finally:
            self._start_in_flight = False

    async def _start_checked(self, args: StartArgs, origin: Origin) -> dict[str, Any]:
        overridden: str | None = None
        if args.recipe_toml is not None:
            source = f"mqtt:{origin}:start"
            loaded = await self._parse_inline(args.recipe_toml, source)
            overridden = self._start_gate(await self.gate.predict(loaded, source), args)
            version = self.accept_recipe(loaded, source).version
        else:
            assert args.recipe is not None
            stored = self.library.text(args.recipe, args.version)
            if stored is None:
                which = f" version {args.version}" if args.version else ""
                raise CommandError(
                    "unknown_recipe", f"no recipe {args.recipe!r}{which} in the library"
                )
            text, version = stored
            try:
                # Limits may have been tightened since the recipe was accepted: validate again.
                loaded = await self.parse(
                    text.encode("utf-8"), library_source(args.recipe, version)
                )
            except RecipeInvalid as exc:
                raise CommandError(
                    "recipe_invalid",
                    f"library recipe {args.recipe!r} no longer passes validation: "
                    + "; ".join(f"{i.field}: {i.reason}" for i in exc.issues),
                ) from exc
            if self.gate.mode == "refuse":
                source = library_source(args.recipe, version)
                overridden = self._start_gate(await self.gate.predict(loaded, source), args)
        if self._abort_during_start is not None:
            raise CommandError(
                "not_allowed",
                f"start overtaken: an abort arrived while the recipe was being checked "
                f"({self._abort_during_start}); nothing was started",
            )
        self.rig.prepare(loaded.recipe)
        before = self.executor.run_id
        self.run_task = task = asyncio.create_task(
            self._run(loaded, args.lot_id, args.operator, version), name="run"
        )
        # Executor.run identifies the devices, then takes the START transition and creates
        # the record; wait for that so the reply names the run (or says why it did not start).
        self._run_started.clear()
        started = asyncio.ensure_future(self._run_started.wait())
        try:
            await asyncio.wait(
                {started, task}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            started.cancel()
        if self.executor.run_id == before:
            refused = self._start_refused
            raise CommandError(
                "not_allowed" if refused else "internal_error",
                refused or "the run did not start (see the daemon log)",
            )
        if overridden is not None:
            self.executor.note("prediction_overridden", overridden)
        if self._abort_during_start is not None:
            # The abort came while the run was identifying its devices: it ends the run now,
            # as it would have had the commands been taken one after the other.
            # Refused only if the run already ended on its own; the start's reply stands.
            with contextlib.suppress(CommandRefused):
                self.executor.abort(self._abort_during_start, code="operator_abort")
        return {
            "run_id": self.executor.run_id,
            "recipe": {"name": loaded.recipe.name, "version": version, "sha256": loaded.sha256},
            "lot_id": args.lot_id,
        }

    def _start_gate(self, prediction: dict[str, Any] | None, args: StartArgs) -> str | None:
        """Under "refuse", a recipe predicted to fail starts only on an engineer's override;
        returns what the run records of it (None: nothing to record)."""
        if not self.gate.refuses(prediction):
            return None
        assert prediction is not None
        if args.override_prediction is None:
            raise CommandError(
                "predicted_failure",
                f"start refused: {refusal_text(prediction)}; an engineer may start it anyway "
                "with override_prediction (who and why, recorded with the run)",
            )
        return (
            f"started against the twin's prediction ({refusal_text(prediction)}) on the "
            f"override of {args.override_prediction}"
        )

    async def _run(
        self, loaded: LoadedRecipe, lot_id: str, operator: str | None, version: int
    ) -> None:
        self._start_refused = None
        try:
            await self.executor.run(
                loaded, lot_id=lot_id, operator=operator, recipe_version=version
            )
        except asyncio.CancelledError:
            raise
        except CommandRefused as exc:  # refused before it started (an interlock tripped)
            self._start_refused = str(exc)
        except Exception:
            # Executor.run has its own safe-state path; this is the net under it.
            log.exception("run_task_failed")
            await asyncio.shield(outputs_off(self.rig.machine))
        finally:
            self._state_changed()

    async def _cmd_hold(self, args: HoldArgs, origin: Origin) -> dict[str, Any]:
        by = _who(args.operator, origin)
        self._refusable(lambda: self.executor.request_hold(by))
        return {"state": self.executor.state.value, "by": by}

    async def _cmd_resume(self, args: HoldArgs, origin: Origin) -> dict[str, Any]:
        by = _who(args.operator, origin)
        self._refusable(lambda: self.executor.resume(by))
        return {"state": self.executor.state.value, "by": by}

    async def _cmd_abort(self, args: AbortArgs, origin: Origin) -> dict[str, Any]:
        who = "the machine's operator" if origin != "remote" else "the MES"
        reason = args.reason or f"aborted by {who}"
        if self._start_in_flight and self.executor.state is RunState.IDLE:
            # No run to abort yet: the start being checked takes it up (_start_checked).
            self._abort_during_start = reason
            return {"state": self.executor.state.value, "run_id": None, "overtook": "start"}
        self._refusable(lambda: self.executor.abort(reason, code="operator_abort"))
        return {"state": self.executor.state.value, "run_id": self.executor.run_id}

    async def _cmd_reset(self, _args: NoArgs, _origin: Origin) -> dict[str, Any]:
        self._refusable(self.executor.reset)
        return {"state": self.executor.state.value}

    async def _cmd_ack_alarm(self, args: AckAlarmArgs, origin: Origin) -> dict[str, Any]:
        matching = [a for a in self.alarms if a.get("code") == args.code]
        if not matching:
            active = ", ".join(sorted({str(a.get("code")) for a in self.alarms})) or "none"
            raise CommandError("unknown_alarm", f"no active alarm {args.code!r} (active: {active})")
        self.alarms = [a for a in self.alarms if a.get("code") != args.code]
        self.kv.put("alarms", self.alarms)
        self.emit("AlarmCleared", code=args.code, count=len(matching), by=origin)
        self._state_changed()
        return {"cleared": len(matching), "alarms": list(self.alarms)}

    @staticmethod
    def _refusable(action: Callable[[], None]) -> None:
        try:
            action()
        except CommandRefused as exc:
            raise CommandError("not_allowed", str(exc)) from exc

    # ---- telemetry -----------------------------------------------------------------------
    def telemetry_doc(self, snap: Snapshot) -> dict[str, Any]:
        ex = self.executor
        stage = snap.stage
        return {
            "ts": utc_now(),
            "run_id": ex.run_id if ex.state is not RunState.IDLE else None,
            "step": ex.current_step,
            "setpoint_c": ex.ctx.setpoint_c if ex.ctx is not None and ex.run_id else None,
            "temps_c": {ch: (r.value if r.ok else None) for ch, r in snap.temps.items()},
            "pressure_mbar": snap.pressure_mbar(),
            "o2_ppm": snap.o2_ppm(),
            "lamp_pct": round(snap.lamp_mean_pct(), 2),
            "z_um": stage.position_um.value if stage is not None and stage.position_um.ok else None,
            "device_errors": dict(snap.errors),
        }
