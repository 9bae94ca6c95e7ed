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
import math
import os
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, TextIO, cast

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

# Per-sample process values of the lead-lift kinds, in the order of the trace's Sample fields.
_SAMPLE_PROCESS_COLUMNS: Final = (
    "z_force_n",
    "uv_mw_cm2",
    "uv_dose_mj_cm2",
    "cure_conversion",
    "dispensed_ul",
)

# Each entry migrates the schema from version i to i + 1. Append only: a released migration
# is never edited, because databases in the field have already run it.
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            recipe_name TEXT NOT NULL,
            recipe_version INTEGER NOT NULL,
            recipe_sha256 TEXT NOT NULL,
            recipe_text TEXT NOT NULL,
            lot_id TEXT NOT NULL,
            operator TEXT NOT NULL,
            equipment_id TEXT NOT NULL,
            software_version TEXT NOT NULL,
            config_hash TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'running'
                CHECK (state IN ('running', 'completed', 'aborted', 'failed')),
            reason TEXT NOT NULL DEFAULT '',
            started_at TEXT NOT NULL,
            ended_at TEXT,
            result_json TEXT,
            owner TEXT NOT NULL
        ) STRICT
        """,
        "CREATE INDEX runs_started_at ON runs (started_at)",
        "CREATE INDEX runs_state ON runs (state)",
        """
        CREATE TABLE steps (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            idx INTEGER NOT NULL,
            type TEXT NOT NULL,
            name TEXT NOT NULL,
            result TEXT NOT NULL DEFAULT 'running'
                CHECK (result IN ('running', 'completed', 'aborted', 'failed', 'skipped')),
            started_t_s REAL NOT NULL,
            ended_t_s REAL,
            detail TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (run_id, idx)
        ) STRICT
        """,
        # One row per sample with the per-channel values as JSON: a run is ~10 000 rows and is
        # always read whole, in order; a row per channel value would multiply the rows by the
        # channel count and make export a pivot.
        """
        CREATE TABLE samples (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            t_s REAL NOT NULL,
            step TEXT NOT NULL,
            setpoint_c REAL,
            pressure_mbar REAL,
            o2_ppm REAL,
            lamp_pct REAL NOT NULL,
            z_um REAL,
            temps_json TEXT NOT NULL,
            lamp_zones_json TEXT NOT NULL
        ) STRICT
        """,
        "CREATE INDEX samples_run ON samples (run_id, t_s)",
        """
        CREATE TABLE alarms (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            t_s REAL NOT NULL,
            code TEXT NOT NULL,
            severity TEXT NOT NULL,
            message TEXT NOT NULL
        ) STRICT
        """,
        "CREATE INDEX alarms_run ON alarms (run_id, t_s)",
        # A finished run is a quality record: nothing may rewrite or remove it, whichever
        # code path (or hand-typed SQL) tries.
        """
        CREATE TRIGGER runs_finished_no_update BEFORE UPDATE ON runs
        WHEN OLD.state <> 'running'
        BEGIN SELECT RAISE(ABORT, 'run is finished: its record cannot be changed'); END
        """,
        """
        CREATE TRIGGER runs_finished_no_delete BEFORE DELETE ON runs
        WHEN OLD.state <> 'running'
        BEGIN SELECT RAISE(ABORT, 'run is finished: its record cannot be deleted'); END
        """,
        *(
            f"""
            CREATE TRIGGER {table}_finished_no_{op.lower()} BEFORE {op} ON {table}
            WHEN (SELECT state FROM runs WHERE run_id = {row}.run_id) <> 'running'
            BEGIN SELECT RAISE(ABORT, 'run is finished: its record cannot be changed'); END
            """
            for table in ("steps", "samples", "alarms")
            for op, row in (("INSERT", "NEW"), ("UPDATE", "OLD"), ("DELETE", "OLD"))
        ),
    ),
    # `bonderd serve` (daemon/mes/outbox.py, daemon/mes/library.py): the MQTT event outbox with its
    # per-equipment sequence, command replies for de-duplication, the recipe library, and
    # the few values that must survive a restart (control mode, active alarms).
    (
        """
        CREATE TABLE event_seq (
            equipment_id TEXT PRIMARY KEY,
            last_seq INTEGER NOT NULL
        ) STRICT
        """,
        """
        CREATE TABLE event_outbox (
            equipment_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            event TEXT NOT NULL,
            payload_json TEXT NOT NULL,
            created_at TEXT NOT NULL,
            delivered_at TEXT,
            PRIMARY KEY (equipment_id, seq)
        ) STRICT
        """,
        "CREATE INDEX event_outbox_pending ON event_outbox (equipment_id, delivered_at, seq)",
        """
        CREATE TABLE command_replies (
            command_id TEXT PRIMARY KEY,
            command TEXT NOT NULL,
            reply_json TEXT NOT NULL,
            received_at TEXT NOT NULL
        ) STRICT
        """,
        """
        CREATE TABLE recipe_library (
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            recipe_text TEXT NOT NULL,
            source TEXT NOT NULL,
            added_at TEXT NOT NULL,
            PRIMARY KEY (name, version),
            UNIQUE (name, sha256)
        ) STRICT
        """,
        # A library version is what runs refer to by (name, version): it never changes.
        """
        CREATE TRIGGER recipe_library_no_update BEFORE UPDATE ON recipe_library
        BEGIN SELECT RAISE(ABORT, 'a recipe version cannot be changed'); END
        """,
        """
        CREATE TRIGGER recipe_library_no_delete BEFORE DELETE ON recipe_library
        BEGIN SELECT RAISE(ABORT, 'a recipe version cannot be deleted'); END
        """,
        """
        CREATE TABLE serve_state (
            key TEXT PRIMARY KEY,
            value_json TEXT NOT NULL
        ) STRICT
        """,
    ),
    # Traceability (run reports): what each device said it was (make, model, firmware) when
    # the run started. A table rather than a column on runs, so that migrating a database in
    # the field touches no finished run's row (which the triggers above protect).
    (
        """
        CREATE TABLE run_devices (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            device TEXT NOT NULL,
            identity TEXT NOT NULL,
            PRIMARY KEY (run_id, device)
        ) STRICT
        """,
        *(
            f"""
            CREATE TRIGGER run_devices_finished_no_{op.lower()} BEFORE {op} ON run_devices
            WHEN (SELECT state FROM runs WHERE run_id = {row}.run_id) <> 'running'
            BEGIN SELECT RAISE(ABORT, 'run is finished: its record cannot be changed'); END
            """
            for op, row in (("INSERT", "NEW"), ("UPDATE", "OLD"), ("DELETE", "OLD"))
        ),
    ),
    # Lead lift, release and encapsulation (ADR 0051): Z force, UV irradiance and dose, cure
    # conversion and dispensed volume per sample. Added columns are NULL in the rows of older
    # runs (not measured then); ADD COLUMN rewrites no row, so no finished record changes.
    tuple(f"ALTER TABLE samples ADD COLUMN {column} REAL" for column in _SAMPLE_PROCESS_COLUMNS),
    # Operator holds (reports, the steps table): who asked, when the machine was held before
    # which step, and when and by whom it was resumed (or that the run ended held).
    (
        """
        CREATE TABLE holds (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            idx INTEGER NOT NULL,
            before_step INTEGER NOT NULL,
            requested_t_s REAL NOT NULL,
            requested_by TEXT NOT NULL,
            held_t_s REAL NOT NULL,
            ended_t_s REAL,
            ended_by TEXT NOT NULL DEFAULT '',
            result TEXT NOT NULL DEFAULT 'held'
                CHECK (result IN ('held', 'resumed', 'aborted')),
            PRIMARY KEY (run_id, idx)
        ) STRICT
        """,
        *(
            f"""
            CREATE TRIGGER holds_finished_no_{op.lower()} BEFORE {op} ON holds
            WHEN (SELECT state FROM runs WHERE run_id = {row}.run_id) <> 'running'
            BEGIN SELECT RAISE(ABORT, 'run is finished: its record cannot be changed'); END
            """
            for op, row in (("INSERT", "NEW"), ("UPDATE", "OLD"), ("DELETE", "OLD"))
        ),
    ),
)
SCHEMA_VERSION: Final = len(_MIGRATIONS)


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


def _utc_iso(ts: datetime | str) -> str:
    """ISO-8601 UTC with a fixed number of digits, so that the text sorts as the time does."""
    if isinstance(ts, str):
        try:
            ts = datetime.fromisoformat(ts)
        except ValueError:
            raise ValueError(f"timestamp {ts!r} is not ISO-8601") from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        # A naive time would be read back as whatever zone the reader assumes.
        raise ValueError(f"timestamp {ts.isoformat()!r} has no time zone")
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# The trace's JSON columns, written compact: one encoder for every sample (json.dumps with
# separators builds a new one per call; two per sample, twenty samples a second).
_COMPACT_JSON: Final = json.JSONEncoder(separators=(",", ":"))
_KEY_JSON: dict[str, str] = {}  # channel name -> its JSON string (a handful of channels)


def _temps_json(temps: Mapping[str, float | None]) -> str:
    """``_COMPACT_JSON.encode(temps)``, byte for byte, without the encoder's per-call set-up
    (a third of its cost for five channels) for the usual case: string keys, finite floats or
    None."""
    parts = []
    for k, v in temps.items():
        if type(v) is float and v - v == 0.0:  # finite: what json writes is float.__repr__
            val = repr(v)
        elif v is None:
            val = "null"
        else:
            return _COMPACT_JSON.encode(temps)
        key = _KEY_JSON.get(k)
        if key is None:
            if type(k) is not str:
                return _COMPACT_JSON.encode(temps)
            key = _KEY_JSON[k] = _COMPACT_JSON.encode(k)
        parts.append(f"{key}:{val}")
    return "{" + ",".join(parts) + "}"


def _floats_json(values: Sequence[float]) -> str:
    """``_COMPACT_JSON.encode(list(values))``, byte for byte, the same way for finite floats."""
    for v in values:
        if type(v) is not float or v - v != 0.0:
            return _COMPACT_JSON.encode(list(values))
    return "[" + ",".join(map(repr, values)) + "]"


def _real(v: float | None) -> float | None:
    # SQLite stores NaN as NULL anyway; making it explicit keeps the two paths identical.
    return None if v is None or math.isnan(v) else float(v)


def _sample_rows(run_id: str, samples: Sequence[Sample]) -> list[tuple[Any, ...]]:
    """The samples' rows for the samples table, in its column order (20 a second)."""
    rows: list[tuple[Any, ...]] = []
    append, isnan = rows.append, math.isnan
    for s in samples:
        # _real() inlined for a float that is not NaN (nearly every value): the same value.
        sp, pr, o2, z = s.setpoint_c, s.pressure_mbar, s.o2_ppm, s.z_um
        append(
            (
                run_id,
                s.t_s,
                s.step,
                sp if type(sp) is float and not isnan(sp) else _real(sp),
                pr if type(pr) is float and not isnan(pr) else _real(pr),
                o2 if type(o2) is float and not isnan(o2) else _real(o2),
                s.lamp_pct,
                z if type(z) is float and not isnan(z) else _real(z),
                _temps_json(s.temps_c),
                _floats_json(s.lamp_zones_pct),
                _real(s.z_force_n),
                _real(s.uv_mw_cm2),
                _real(s.uv_dose_mj_cm2),
                _real(s.cure_conversion),
                _real(s.dispensed_ul),
            )
        )
    return rows


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
                for statement in _MIGRATIONS[target - 1]:
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
                    _utc_iso(started_at),
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
        rows = _sample_rows(run_id, samples)
        with self._tx() as db:
            self._require_running(db, run_id)
            db.executemany(
                "INSERT INTO samples (run_id, t_s, step, setpoint_c, pressure_mbar, o2_ppm, "
                "lamp_pct, z_um, temps_json, lamp_zones_json, "
                f"{', '.join(_SAMPLE_PROCESS_COLUMNS)}) "
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
                (state, reason, _utc_iso(ended_at), result_json, run_id),
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
                f"temps_json, lamp_zones_json, {', '.join(_SAMPLE_PROCESS_COLUMNS)} "
                "FROM samples WHERE run_id = ? ORDER BY t_s, id",
                (run_id,),
            )
        ]
