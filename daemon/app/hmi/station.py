"""What the operator station shows, as plain JSON-ready documents (no web library here).

``Station`` watches the executor's events (the run's lot and operator, when each step
started) and builds, from the controller and the monitor's latest snapshot, one *frame*: the
state panel, one chart point and the machine synoptic. ``run_history`` reads a run so far
from the records (in a worker thread, with a store of its own), so that a page opened mid-run
or after a lost connection draws the whole run, not only what it saw live.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any, Final

import structlog

from daemon import __version__
from daemon.app.hmi import records_view
from daemon.app.hmi.users import User
from daemon.app.o2 import o2_meaningful
from daemon.machine.monitor import Snapshot
from daemon.mes.controller import Controller
from daemon.recipe.model import AnyRecipe, LeadLiftRecipe, Reflow, component_max_c
from daemon.report.html import parse_recorded_recipe
from daemon.run.run_state import RunState
from daemon.store.records import RunStore
from daemon.store.trace import Sample
from drivers.protocols import (
    IN_CHILLER_FLOW,
    IN_CHUCK_VACUUM_OK,
    IN_DOOR_CLOSED,
    IN_ESTOP_OK,
    IN_SUPPORT_VACUUM_OK,
    OUT_CHUCK_VACUUM,
    OUT_FILM_CLAMP,
    OUT_LAMP_CONTACTOR,
    OUT_SCR_ENABLE,
    OUT_SUPPORT_VACUUM,
    OUT_UV_ENABLE,
    VALVE_N2_PURGE,
    VALVE_PUMP,
    VALVE_VENT,
)

log = structlog.get_logger(__name__)

# The page draws at most this many points of a run's history; a two-hour run at 20 Hz has
# 144 000 samples, which would cost seconds to encode and the browser to draw, for no more
# than a screen's width of detail. Live points are added on top, one per frame.
HISTORY_POINTS_MAX: Final = 4000
# Below this a step's progress says too little to extrapolate its end from.
PROGRESS_MIN_FOR_ESTIMATE: Final = 0.02


def _round(v: float | None, digits: int = 3) -> float | None:
    return None if v is None else round(v, digits)


def shown_o2(ppm: float | None, pressure_mbar: float | None) -> float | None:
    """The O2 concentration where it means something (ADR 0004: not under vacuum)."""
    return ppm if o2_meaningful(pressure_mbar) else None


def synoptic(snap: Snapshot | None) -> dict[str, Any]:
    """Every device state of the machine's synoptic; None where the device gave no answer."""
    if snap is None:
        return {}
    valves = snap.valves or {}
    outputs = snap.outputs or {}
    inputs = snap.inputs or {}

    def pick(d: dict[str, bool], key: str, have: object) -> bool | None:
        return d.get(key) if have is not None else None

    pump, chiller, stage, uv, disp = snap.pump, snap.chiller, snap.stage, snap.uv, snap.dispenser
    return {
        "pump": None if pump is None else {"on": pump.running, "fault": pump.fault},
        "valve_n2": pick(valves, VALVE_N2_PURGE, snap.valves),
        "valve_pump": pick(valves, VALVE_PUMP, snap.valves),
        "valve_vent": pick(valves, VALVE_VENT, snap.valves),
        "lamp_contactor": pick(outputs, OUT_LAMP_CONTACTOR, snap.outputs),
        "scr_enable": pick(outputs, OUT_SCR_ENABLE, snap.outputs),
        "film_clamp": pick(outputs, OUT_FILM_CLAMP, snap.outputs),
        "uv_enable": pick(outputs, OUT_UV_ENABLE, snap.outputs),
        "chiller": None
        if chiller is None
        else {
            "on": chiller.running,
            "fault": chiller.fault,
            "temp_c": _round(chiller.temperature.value if chiller.temperature.ok else None, 2),
            "setpoint_c": round(chiller.setpoint_c, 2),
        },
        "chiller_flow": pick(inputs, IN_CHILLER_FLOW, snap.inputs),
        "chuck_vacuum": pick(outputs, OUT_CHUCK_VACUUM, snap.outputs),
        "chuck_vacuum_ok": pick(inputs, IN_CHUCK_VACUUM_OK, snap.inputs),
        "support_vacuum": pick(outputs, OUT_SUPPORT_VACUUM, snap.outputs),
        "support_vacuum_ok": pick(inputs, IN_SUPPORT_VACUUM_OK, snap.inputs),
        "door_closed": pick(inputs, IN_DOOR_CLOSED, snap.inputs),
        "estop_ok": pick(inputs, IN_ESTOP_OK, snap.inputs),
        "z_stage": None
        if stage is None
        else {
            "position_um": _round(stage.position_um.value if stage.position_um.ok else None, 1),
            "busy": stage.busy,
            "homed": stage.homed,
            "fault": stage.fault,
        },
        "uv_shutter": None
        if uv is None
        else {"open": uv.shutter_open, "ready": uv.lamp_ready, "fault": uv.fault},
        "dispenser": None
        if disp is None
        else {
            "on": disp.dispensing,
            "pressure_kpa": round(disp.pressure_kpa, 1),
            "fault": disp.fault,
        },
        "pressure_mbar": snap.pressure_mbar(),
        "device_errors": dict(snap.errors),
    }


def recipe_context(recipe: AnyRecipe | None) -> dict[str, Any]:
    """The lines the temperature chart draws, as the run report does (daemon/report/charts):
    the liquidus, Tg − margin (a bump reflow: the carrier's limit) and each reflow's peak
    window; none for a lead lift, which melts nothing."""
    if recipe is None or isinstance(recipe, LeadLiftRecipe):
        return {"liquidus_c": None, "component_max_c": None, "peak_windows": []}
    mats = recipe.materials
    solder = mats.solder
    tg = component_max_c(recipe)
    polymer = getattr(getattr(mats, "component", None), "polymer", None)
    return {
        "liquidus_c": solder.liquidus_c,
        "liquidus_label": f"liquidus {solder.liquidus_c:g} °C ({solder.name})",
        "component_max_c": tg,
        "component_label": f"Tg − margin {tg:g} °C ({polymer})"
        if polymer
        else f"carrier limit {tg:g} °C",
        "peak_windows": [
            {"step": s.name, "min_c": s.peak_window_c.min, "max_c": s.peak_window_c.max}
            for s in recipe.steps
            if isinstance(s, Reflow)
        ],
        "control_tc": next((s.control_tc for s in recipe.steps if isinstance(s, Reflow)), "chip"),
    }


def _columns(samples: list[Sample]) -> dict[str, Any]:
    """The trace as columns, thinned to ``HISTORY_POINTS_MAX`` points (the last one kept)."""
    step = max(1, -(-len(samples) // HISTORY_POINTS_MAX))
    picked = samples[::step]
    if samples and picked[-1] is not samples[-1]:
        picked.append(samples[-1])
    channels: list[str] = []
    for s in picked:
        for ch in s.temps_c:
            if ch not in channels:
                channels.append(ch)
    zones = max((len(s.lamp_zones_pct) for s in picked), default=0)
    return {
        "t_s": [s.t_s for s in picked],
        "temps_c": {ch: [_round(s.temps_c.get(ch), 2) for s in picked] for ch in channels},
        "setpoint_c": [_round(s.setpoint_c, 2) for s in picked],
        "pressure_mbar": [s.pressure_mbar for s in picked],
        "o2_ppm": [shown_o2(s.o2_ppm, s.pressure_mbar) for s in picked],
        "lamp_zones_pct": [
            [round(s.lamp_zones_pct[z], 2) if z < len(s.lamp_zones_pct) else None for s in picked]
            for z in range(zones)
        ],
        "thinned_every": step,
    }


def run_history(data_dir: Path, run_id: str | None) -> dict[str, Any]:
    """The run ``run_id`` (None: the newest) as far as the records have it. Blocking: call
    it in a thread (``asyncio.to_thread``); the store here is this thread's own."""
    with RunStore(data_dir) as store:
        record = store.get_run(run_id) if run_id is not None else None
        if record is None and run_id is None:
            latest = store.list_runs(1)
            record = latest[0] if latest else None
        if record is None:
            return {"run": None}
        samples = store.samples(record.run_id)
    return {
        "run": {
            "run_id": record.run_id,
            "recipe": {"name": record.recipe_name, "version": record.recipe_version},
            "lot_id": record.lot_id,
            "operator": record.operator,
            "state": record.state,
            "reason": record.reason,
            "steps": [
                {"name": s.name, "start_s": s.started_t_s, "end_s": s.ended_t_s, "result": s.result}
                for s in record.steps
            ],
            "context": recipe_context(parse_recorded_recipe(record.recipe_text)),
        },
        "trace": _columns(samples),
    }


class Station:
    """The live state of the machine for the page, built from the controller's own state."""

    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl
        self.ex = ctl.executor
        self._lot: str | None = None
        self._operator: str | None = None
        self._step_t0: float | None = None  # run time the current step started
        self._context: dict[str, Any] = recipe_context(None)
        self._tasks: set[asyncio.Task[None]] = set()
        self.ex.subscribe(self._on_event)

    def _on_event(self, event: str, payload: dict[str, Any]) -> None:
        if event == "RunStarted":
            self._lot = payload.get("lot_id")
            self._operator = None
            self._step_t0 = None
            ctx = self.ex.ctx
            self._context = recipe_context(ctx.recipe if ctx is not None else None)
            run_id = payload.get("run_id")
            if isinstance(run_id, str):
                # The operator is in the run record only; read it there, off the loop.
                task = asyncio.get_running_loop().create_task(self._learn_operator(run_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        elif event == "StepStarted":
            self._step_t0 = self.ex.t_run()

    async def _learn_operator(self, run_id: str) -> None:
        def read() -> str | None:
            with RunStore(self.ctl.settings.data_dir) as store:
                record = store.get_run(run_id)
            return None if record is None else record.operator

        try:
            operator = await asyncio.to_thread(read)
        except Exception:
            log.exception("hmi_operator_unreadable", run_id=run_id)
            return
        if self.ex.run_id == run_id:
            self._operator = operator

    def context(self) -> dict[str, Any]:
        return self._context

    async def history(self, run_id: str | None) -> dict[str, Any]:
        """A run so far from the records (None: the current run, else the newest)."""
        wanted = run_id
        if wanted is None and self.ex.state is not RunState.IDLE:
            wanted = self.ex.run_id
        return await asyncio.to_thread(run_history, self.ctl.settings.data_dir, wanted)

    async def runs(self, query: records_view.RunsQuery) -> list[dict[str, Any]]:
        return await asyncio.to_thread(
            records_view.list_runs,
            self.ctl.settings.data_dir,
            lot=query.lot,
            recipe=query.recipe,
            result=query.result,
            limit=query.limit,
        )

    async def report(self, run_id: str) -> str | None:
        # Rendering reads the whole trace and draws the charts: seconds for a long run.
        return await asyncio.to_thread(records_view.report_html, self.ctl.settings.data_dir, run_id)

    async def trace_csv(self, run_id: str) -> str | None:
        return await asyncio.to_thread(records_view.trace_csv, self.ctl.settings.data_dir, run_id)

    def recipes(self) -> list[dict[str, Any]]:
        return [e.as_dict() for e in self.ctl.library.latest()]

    def recipe_versions(self, name: str) -> list[dict[str, Any]]:
        return [e.as_dict() for e in self.ctl.library.versions(name)]

    def recipe_text(self, name: str, version: int) -> str | None:
        found = self.ctl.library.text(name, version)
        return None if found is None else found[0]

    async def diagnostics(self) -> dict[str, Any]:
        """For maintenance: the control loop's health, the interlocks, the links, each
        device's reading errors now and the identity each reported at the last run start."""
        ctl = self.ctl
        snap = ctl.monitor.latest

        def identities() -> dict[str, str]:
            with RunStore(ctl.settings.data_dir) as store:
                latest = store.list_runs(1)
            return dict(latest[0].devices) if latest else {}

        interlocks = ctl.executor.interlocks
        trip = interlocks.trip
        return {
            "software_version": __version__,
            "equipment_id": ctl.settings.equipment_id,
            "control_loop": ctl.control_loop_doc(),
            "interlocks_healthy": interlocks.healthy(),
            "interlock_trip": None
            if trip is None
            else {"code": trip.code, "message": trip.message},
            "mqtt_connected": ctl.link is not None and ctl.link.connected.is_set(),
            "events_pending": ctl.outbox.pending_count(),
            "device_errors": {} if snap is None else dict(snap.errors),
            "device_identities": await asyncio.to_thread(identities),
        }

    async def command(self, command: str, args: dict[str, Any], user: User) -> dict[str, Any]:
        """Through the one controller, as the MES's commands go (origin ``station``); the
        user is named where the records keep a name: the operator of a start, who held or
        resumed, why and by whom a run was aborted."""
        args = dict(args)
        if command == "start":
            args.setdefault("operator", user.name)
        elif command in ("hold", "resume"):
            args["operator"] = user.name
        elif command == "abort" and isinstance(args.get("reason"), str):
            args["reason"] = f"{args['reason']} (by {user.name} at the operator station)"
        payload = {"command_id": f"hmi-{uuid.uuid4().hex}", "command": command, "args": args}
        return await self.ctl.handle(json.dumps(payload).encode("utf-8"), "station")

    def frame(self) -> dict[str, Any]:
        """The state panel, one chart point (when a run is on) and the synoptic, now."""
        ctl, ex = self.ctl, self.ex
        doc = ctl.state_doc()
        snap = ctl.monitor.latest
        running = ex.state is not RunState.IDLE and ex.run_id is not None
        step: dict[str, Any] | None = None
        if running and ex.current_step is not None:
            progress = ex.ctx.progress if ex.ctx is not None else 0.0
            elapsed = ex.t_run() - self._step_t0 if self._step_t0 is not None else None
            remaining = (
                elapsed * (1.0 - progress) / progress
                if elapsed is not None and progress >= PROGRESS_MIN_FOR_ESTIMATE
                else None
            )
            step = {
                "name": ex.current_step,
                "type": ex.current_type,
                "index": ex.step_index,
                "count": ex.step_count,
                "start_s": _round(self._step_t0, 3),
                "progress": round(progress, 4),
                "elapsed_s": _round(elapsed, 1),
                "remaining_s": _round(remaining, 1),
            }
        point: dict[str, Any] | None = None
        if running and snap is not None:
            pressure = snap.pressure_mbar()
            setpoint = ex.ctx.setpoint_c if ex.ctx is not None else None
            point = {
                "t_s": round(ex.t_run(), 3),
                "temps_c": {ch: _round(snap.temp(ch), 2) for ch in snap.temps},
                "setpoint_c": _round(setpoint, 2),
                "pressure_mbar": pressure,
                "o2_ppm": shown_o2(snap.o2_ppm(), pressure),
                "lamp_zones_pct": [round(p, 2) for p in snap.lamp_pct],
            }
        return {
            "equipment_id": ctl.settings.equipment_id,
            "state": doc["state"],
            "control": doc["control"],
            "e10": doc["e10"],
            "run_id": doc["run_id"],
            "recipe": doc["recipe"],
            "lot_id": self._lot if running else None,
            "operator": self._operator if running else None,
            "step": step,
            "alarms": doc["alarms"],
            "ts": doc["ts"],
            "point": point,
            "synoptic": synoptic(snap),
        }
