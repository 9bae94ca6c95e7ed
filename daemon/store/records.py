"""The run store: one SQLite database (WAL) holding runs, their steps, trace samples and alarms.

Every method is one short transaction, so the executor can call it from the event loop with
small batches. The records are the product's quality records, so the database itself refuses
changes to a finished run (triggers), not only this module.

Crash recovery: a run left ``running`` by a process that died is marked ``aborted`` when a
store is next opened. "Died" is decided by an advisory lock that each open store holds on its
own owner file (``owners/<token>.lock``): the kernel drops the lock when the process dies,
however it dies. A reader (``bonderd export``) opening the store while the daemon runs
therefore never aborts the live run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, TextIO, cast

from daemon.store.rows import sample_rows, utc_iso
from daemon.store.schema import MIGRATIONS, SAMPLE_PROCESS_COLUMNS, SCHEMA_VERSION
from daemon.store.trace import Sample

DB_NAME: Final = "bonderd.sqlite"
OWNERS_DIR: Final = "owners"
INTERRUPTED_REASON: Final = "interrupted: the daemon stopped while the run was in progress"

RunStateName = Literal["running", "completed", "aborted", "failed"]
FinalState = Literal["completed", "aborted", "failed"]
StepResultName = Literal["running", "completed", "aborted", "failed", "skipped"]
_FINAL_STATES: Final = frozenset({"completed", "aborted", "failed"})
_STEP_END_RESULTS: Final = frozenset({"completed", "aborted", "failed", "skipped"})

# A writer that holds the database (another process finishing a transaction) is waited for
# this long; short because the caller is the event loop, and our own transactions are short.
_BUSY_TIMEOUT_S: Final = 2.0


class RecordsError(Exception):
    """The run store cannot do what was asked; the message says why."""


class UnknownRun(RecordsError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run {run_id!r} in the store")
        self.run_id = run_id


class RunFinished(RecordsError):
    """The run is finished; its record is immutable."""

    def __init__(self, run_id: str, state: str) -> None:
        super().__init__(f"run {run_id!r} is already {state}: its record cannot be changed")
        self.run_id = run_id
        self.state = state


@dataclass(frozen=True, slots=True)
class StepRecord:
    idx: int
    type: str
    name: str
    result: StepResultName
    started_t_s: float
    ended_t_s: float | None
    detail: str


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    t_s: float
    code: str
    severity: str
    message: str


@dataclass(frozen=True, slots=True)
class HoldRecord:
    """An operator hold: asked for at ``requested_t_s``, the machine held (lamps off, between
    steps) from ``held_t_s`` before recipe step ``before_step`` until ``ended_t_s``."""

    before_step: int
    requested_t_s: float
    requested_by: str  # the operator's name as the command gave it, else where it came from
    held_t_s: float
    ended_t_s: float | None  # None: the run ended (or the daemon died) while held
    ended_by: str
    result: Literal["held", "resumed", "aborted"]


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    recipe_name: str
    recipe_version: int
    recipe_sha256: str
    recipe_text: str
    lot_id: str
    operator: str
    equipment_id: str
    software_version: str
    config_hash: str
    state: RunStateName
    reason: str
    started_at: datetime
    ended_at: datetime | None  # None for a run still running or interrupted by a crash
    result: dict[str, Any] | None  # the result document, as finish_run stored it
    steps: tuple[StepRecord, ...]
    alarms: tuple[AlarmRecord, ...]
    # Device name -> the identity it reported at run start; empty for runs recorded before
    # the run_devices table existed.
    devices: dict[str, str] = field(default_factory=dict)
    holds: tuple[HoldRecord, ...] = ()


class RunStore:
    """The SQLite run store under ``data_dir``. Not thread-safe: use it from one thread."""

    def __init__(self, data_dir: Path) -> None:
        self._dir = Path(data_dir)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._owner = uuid.uuid4().hex
        self._owner_file = self._hold_owner_lock()
        try:
            self._db = sqlite3.connect(
                self._dir / DB_NAME, timeout=_BUSY_TIMEOUT_S, isolation_level=None
            )
        except BaseException:
            self._release_owner_lock()
            raise
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL under WAL: a commit survives a process crash; a power cut may lose the
            # last commits but never corrupts the database.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            self._recover_interrupted()
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- lifecycle

    def _hold_owner_lock(self) -> TextIO:
        owners = self._dir / OWNERS_DIR
        owners.mkdir(exist_ok=True)
        # Locked before it gets its final name, so that a recovering process can never see
        # the owner file of a live store unlocked.
        tmp = owners / f".{self._owner}.tmp"
        f = tmp.open("w")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            f.write(f"{os.getpid()}\n")
            f.flush()
            tmp.rename(owners / f"{self._owner}.lock")
        except BaseException:
            f.close()
            tmp.unlink(missing_ok=True)
            raise
        return f

    def _release_owner_lock(self) -> None:
        if self._owner_file.closed:
            return
        (self._dir / OWNERS_DIR / f"{self._owner}.lock").unlink(missing_ok=True)
        self._owner_file.close()  # closing the file drops the flock

    def close(self) -> None:
        """Close the database. Runs this store left ``running`` are recovered on next open."""
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._release_owner_lock()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so a read-then-write transaction cannot
        # fail half-way on a lock upgrade.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._tx() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise RecordsError(
                    f"{self._dir / DB_NAME} has schema version {version}, newer than this "
                    f"software's {SCHEMA_VERSION}: refusing to touch it"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target - 1]:
                    db.execute(statement)
            if version != SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _owner_alive(self, owner: str) -> bool:
        if owner == self._owner:
            return True
        path = self._dir / OWNERS_DIR / f"{owner}.lock"
        try:
            f = path.open("r")
        except FileNotFoundError:
            return False
        with f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            # We hold the dead owner's lock now, so nobody else is inspecting it either.
            path.unlink(missing_ok=True)
            return False

    def _recover_interrupted(self) -> None:
        running = self._db.execute(
            "SELECT run_id, owner FROM runs WHERE state = 'running'"
        ).fetchall()
        dead = [run_id for run_id, owner in running if not self._owner_alive(owner)]
        for run_id in dead:
            with self._tx() as db:
                last_t = db.execute(
                    "SELECT max(t_s) FROM samples WHERE run_id = ?", (run_id,)
                ).fetchone()[0]
                # The last recorded sample is the last moment the run is known to have run.
                db.execute(
                    "UPDATE steps SET result = 'aborted', ended_t_s = max(started_t_s, ?), "
                    "detail = ? WHERE run_id = ? AND result = 'running'",
                    (last_t if last_t is not None else 0.0, INTERRUPTED_REASON, run_id),
                )
                # ended_at stays NULL: the wall-clock time of the crash is not known.
                db.execute(
                    "UPDATE runs SET state = 'aborted', reason = ? "
                    "WHERE run_id = ? AND state = 'running'",
                    (INTERRUPTED_REASON, run_id),
                )
        self._sweep_dead_owner_files()

    def _sweep_dead_owner_files(self) -> None:
        # Owner files of processes that died with no run in progress; only names that carry
        # the final ``.lock`` suffix are looked at, so a store still starting is never touched.
        for path in (self._dir / OWNERS_DIR).glob("*.lock"):
            self._owner_alive(path.stem)

    # ----------------------------------------------------------------- writes

    def _require_running(self, db: sqlite3.Connection, run_id: str) -> None:
        row = db.execute("SELECT state FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise UnknownRun(run_id)
        if row[0] != "running":
            raise RunFinished(run_id, row[0])

    def create_run(
        self,
        run_id: str,
        *,
        recipe_name: str,
        recipe_version: int,
        recipe_sha256: str,
        recipe_text: str,
        lot_id: str,
        operator: str,
        equipment_id: str,
        software_version: str,
        config_hash: str,
        started_at: datetime | str,
        devices: Mapping[str, str] | None = None,
    ) -> None:
        """Record a new run in state ``running``. A run id is never reused.

        ``devices`` maps each device name to the identity it reported (traceability).
        """
        with self._tx() as db:
            if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                raise RecordsError(f"run {run_id!r} already exists")
            db.execute(
                "INSERT INTO runs (run_id, recipe_name, recipe_version, recipe_sha256, "
                "recipe_text, lot_id, operator, equipment_id, software_version, config_hash, "
                "started_at, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    recipe_name,
                    recipe_version,
                    recipe_sha256,
                    recipe_text,
                    lot_id,
                    operator,
                    equipment_id,
                    software_version,
                    config_hash,
                    utc_iso(started_at),
                    self._owner,
                ),
            )
            db.executemany(
                "INSERT INTO run_devices (run_id, device, identity) VALUES (?, ?, ?)",
                [(run_id, name, identity) for name, identity in (devices or {}).items()],
            )

    def step_started(self, run_id: str, idx: int, type_: str, name: str, t_s: float) -> None:
        with self._tx() as db:
            self._require_running(db, run_id)
            try:
                db.execute(
                    "INSERT INTO steps (run_id, idx, type, name, started_t_s) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (run_id, idx, type_, name, t_s),
                )
            except sqlite3.IntegrityError as e:
                raise RecordsError(f"run {run_id!r}: step {idx} already recorded") from e

    def step_ended(self, run_id: str, idx: int, result: str, t_s: float, detail: str = "") -> None:
        """End a started step with ``completed``, ``aborted``, ``failed`` or ``skipped``."""
        if result not in _STEP_END_RESULTS:
            raise ValueError(f"step result {result!r} is not one of {sorted(_STEP_END_RESULTS)}")
        with self._tx() as db:
            self._require_running(db, run_id)
            row = db.execute(
                "SELECT result FROM steps WHERE run_id = ? AND idx = ?", (run_id, idx)
            ).fetchone()
            if row is None:
                raise RecordsError(f"run {run_id!r}: step {idx} was never started")
            if row[0] != "running":
                raise RecordsError(f"run {run_id!r}: step {idx} already ended ({row[0]})")
            db.execute(
                "UPDATE steps SET result = ?, ended_t_s = ?, detail = ? "
                "WHERE run_id = ? AND idx = ?",
                (result, t_s, detail, run_id, idx),
            )

    def add_samples(self, run_id: str, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        rows = sample_rows(run_id, samples)
        with self._tx() as db:
            self._require_running(db, run_id)
            db.executemany(
                "INSERT INTO samples (run_id, t_s, step, setpoint_c, pressure_mbar, o2_ppm, "
                "lamp_pct, z_um, temps_json, lamp_zones_json, "
                f"{', '.join(SAMPLE_PROCESS_COLUMNS)}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def add_alarm(self, run_id: str, t_s: float, code: str, severity: str, message: str) -> None:
        with self._tx() as db:
            self._require_running(db, run_id)
            db.execute(
                "INSERT INTO alarms (run_id, t_s, code, severity, message) VALUES (?, ?, ?, ?, ?)",
                (run_id, t_s, code, severity, message),
            )

    def hold_started(
        self,
        run_id: str,
        *,
        before_step: int,
        requested_t_s: float,
        requested_by: str,
        held_t_s: float,
    ) -> int:
        """Record that the run is held before step ``before_step``; returns the hold's index."""
        with self._tx() as db:
            self._require_running(db, run_id)
            (idx,) = db.execute("SELECT count(*) FROM holds WHERE run_id = ?", (run_id,)).fetchone()
            db.execute(
                "INSERT INTO holds (run_id, idx, before_step, requested_t_s, requested_by, "
                "held_t_s) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, idx, before_step, requested_t_s, requested_by, held_t_s),
            )
        return int(idx)

    def hold_ended(
        self,
        run_id: str,
        idx: int,
        *,
        t_s: float,
        by: str,
        result: Literal["resumed", "aborted"],
    ) -> None:
        with self._tx() as db:
            self._require_running(db, run_id)
            db.execute(
                "UPDATE holds SET ended_t_s = ?, ended_by = ?, result = ? "
                "WHERE run_id = ? AND idx = ? AND result = 'held'",
                (t_s, by, result, run_id, idx),
            )

    def finish_run(
        self,
        run_id: str,
        *,
        state: FinalState,
        reason: str,
        ended_at: datetime | str,
        result: dict[str, Any],
    ) -> None:
        """Close the run's record for good. Raises :class:`RunFinished` if already finished.

        Steps still ``running`` are closed as ``aborted``: a finished record has no open step.
        """
        if state not in _FINAL_STATES:
            raise ValueError(f"final state {state!r} is not one of {sorted(_FINAL_STATES)}")
        result_json = json.dumps(result, allow_nan=False, separators=(",", ":"))
        with self._tx() as db:
            self._require_running(db, run_id)
            db.execute(
                "UPDATE steps SET result = 'aborted', ended_t_s = max(started_t_s, coalesce("
                "(SELECT max(t_s) FROM samples WHERE run_id = ?1), started_t_s)), detail = ?2 "
                "WHERE run_id = ?1 AND result = 'running'",
                (run_id, f"step still running when the run ended: {reason}"),
            )
            db.execute(
                "UPDATE runs SET state = ?, reason = ?, ended_at = ?, result_json = ? "
                "WHERE run_id = ?",
                (state, reason, utc_iso(ended_at), result_json, run_id),
            )

    # ----------------------------------------------------------------- reads

    def _record(self, row: tuple[Any, ...]) -> RunRecord:
        run_id = cast(str, row[0])
        steps = tuple(
            StepRecord(idx, type_, name, result, started, ended, detail)
            for idx, type_, name, result, started, ended, detail in self._db.execute(
                "SELECT idx, type, name, result, started_t_s, ended_t_s, detail "
                "FROM steps WHERE run_id = ? ORDER BY idx",
                (run_id,),
            )
        )
        alarms = tuple(
            AlarmRecord(t_s, code, severity, message)
            for t_s, code, severity, message in self._db.execute(
                "SELECT t_s, code, severity, message FROM alarms WHERE run_id = ? ORDER BY t_s, id",
                (run_id,),
            )
        )
        devices = dict(
            self._db.execute(
                "SELECT device, identity FROM run_devices WHERE run_id = ? ORDER BY device",
                (run_id,),
            ).fetchall()
        )
        holds = tuple(
            HoldRecord(*row)
            for row in self._db.execute(
                "SELECT before_step, requested_t_s, requested_by, held_t_s, ended_t_s, "
                "ended_by, result FROM holds WHERE run_id = ? ORDER BY idx",
                (run_id,),
            )
        )
        return RunRecord(
            run_id=run_id,
            recipe_name=row[1],
            recipe_version=row[2],
            recipe_sha256=row[3],
            recipe_text=row[4],
            lot_id=row[5],
            operator=row[6],
            equipment_id=row[7],
            software_version=row[8],
            config_hash=row[9],
            state=row[10],
            reason=row[11],
            started_at=datetime.fromisoformat(row[12]),
            ended_at=datetime.fromisoformat(row[13]) if row[13] is not None else None,
            result=json.loads(row[14]) if row[14] is not None else None,
            steps=steps,
            alarms=alarms,
            devices=devices,
            holds=holds,
        )

    _RUN_COLUMNS: Final = (
        "run_id, recipe_name, recipe_version, recipe_sha256, recipe_text, lot_id, operator, "
        "equipment_id, software_version, config_hash, state, reason, started_at, ended_at, "
        "result_json"
    )

    def get_run(self, run_id: str) -> RunRecord | None:
        # One read transaction, so the run row, its steps and its alarms are one snapshot.
        self._db.execute("BEGIN")
        try:
            row = self._db.execute(
                f"SELECT {self._RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            return self._record(row) if row is not None else None
        finally:
            self._db.execute("COMMIT")

    def list_runs(self, limit: int = 50) -> list[RunRecord]:
        """The most recently started runs first."""
        self._db.execute("BEGIN")
        try:
            rows = self._db.execute(
                f"SELECT {self._RUN_COLUMNS} FROM runs ORDER BY started_at DESC, rowid DESC "
                "LIMIT ?",
                (limit,),
            ).fetchall()
            return [self._record(r) for r in rows]
        finally:
            self._db.execute("COMMIT")

    def samples(self, run_id: str) -> list[Sample]:
        """The run's trace in recording order (empty for an unknown run)."""
        loads = json.loads
        return [
            Sample(
                t_s=row[0],
                step=row[1],
                setpoint_c=row[2],
                temps_c=loads(row[7]),
                pressure_mbar=row[3],
                o2_ppm=row[4],
                lamp_pct=row[5],
                z_um=row[6],
                lamp_zones_pct=tuple(loads(row[8])),
                z_force_n=row[9],
                uv_mw_cm2=row[10],
                uv_dose_mj_cm2=row[11],
                cure_conversion=row[12],
                dispensed_ul=row[13],
            )
            for row in self._db.execute(
                "SELECT t_s, step, setpoint_c, pressure_mbar, o2_ppm, lamp_pct, z_um, "
                f"temps_json, lamp_zones_json, {', '.join(SAMPLE_PROCESS_COLUMNS)} "
                "FROM samples WHERE run_id = ? ORDER BY t_s, id",
                (run_id,),
            )
        ]
