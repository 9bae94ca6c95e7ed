"""The run store's schema, as the migrations that build it (append only: databases in the
field have run every released one).
"""

from __future__ import annotations

from typing import Final

# Per-sample process values of the lead-lift kinds, in the order of the trace's Sample fields.
SAMPLE_PROCESS_COLUMNS: Final = (
    "z_force_n",
    "uv_mw_cm2",
    "uv_dose_mj_cm2",
    "cure_conversion",
    "dispensed_ul",
)

# Each entry migrates the schema from version i to i + 1. Append only: a released migration
# is never edited, because databases in the field have already run it.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
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
    tuple(f"ALTER TABLE samples ADD COLUMN {column} REAL" for column in SAMPLE_PROCESS_COLUMNS),
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
SCHEMA_VERSION: Final = len(MIGRATIONS)
