"""The SQLite run store: round-trip, immutability of finished runs, crash recovery."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.store.records import (
    DB_NAME,
    INTERRUPTED_REASON,
    RecordsError,
    RunFinished,
    RunStore,
    UnknownRun,
)
from daemon.store.rows import _temps_json
from daemon.store.schema import MIGRATIONS, SCHEMA_VERSION
from daemon.store.trace import Sample

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 5, 1, 8, 0, 0, 123456, tzinfo=UTC)


def sample(i: int, step: str = "reflow") -> Sample:
    return Sample(
        t_s=i * 0.1,
        step=step,
        setpoint_c=25.0 + i * 0.2 if i % 7 else None,
        temps_c={"chip": 25.0 + i / 3, "component": None if i % 5 == 0 else 24.5, "chuck": 20.1},
        pressure_mbar=None if i == 3 else 1000.0 / (i + 1),
        o2_ppm=None if i % 2 else 3.25,
        lamp_pct=12.5,
        z_um=None if i % 3 else 1.5 * i,
        lamp_zones_pct=(10.0, 15.0) if i % 4 else (),
        z_force_n=None if i % 3 else 0.01 * i,
        uv_mw_cm2=100.0 if i % 2 else 0.0,
        uv_dose_mj_cm2=10.0 * i if i % 6 else None,
        cure_conversion=None if i < 10 else i / 20,
        dispensed_ul=0.5 * i if i > 2 else None,
    )


RUN_FIELDS: dict[str, Any] = {
    "recipe_name": "bond-a",
    "recipe_version": 2,
    "recipe_sha256": "ab" * 32,
    "recipe_text": 'kind = "vacuum_film_bond"\n',
    "lot_id": "LOT-7",
    "operator": "ana",
    "equipment_id": "bonder-01",
    "software_version": "0.1.0",
    "config_hash": "cfg-1",
}


def new_run(store: RunStore, run_id: str = "run-1", started_at: datetime = T0) -> None:
    store.create_run(run_id, **RUN_FIELDS, started_at=started_at)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    with RunStore(tmp_path / "data") as s:
        yield s


def finish(store: RunStore, run_id: str = "run-1", **kw: Any) -> None:
    args: dict[str, Any] = {
        "state": "completed",
        "reason": "ok",
        "ended_at": T0 + timedelta(minutes=5),
        "result": {"result": "completed", "metrics": {"peak_c": 245.1}},
    }
    store.finish_run(run_id, **(args | kw))


def test_round_trip(store: RunStore) -> None:
    new_run(store)
    store.step_started("run-1", 0, "purge", "purge", 0.0)
    store.add_samples("run-1", [sample(i, "purge") for i in range(5)])
    store.step_ended("run-1", 0, "completed", 0.4)
    store.step_started("run-1", 1, "reflow", "reflow-main", 0.5)
    store.add_samples("run-1", [sample(i) for i in range(5, 20)])
    store.add_alarm("run-1", 1.2, "TC_NOISE", "warning", "chip thermocouple noisy")
    store.step_ended("run-1", 1, "completed", 1.9, "peak reached")
    finish(store)

    rec = store.get_run("run-1")
    assert rec is not None
    assert (rec.recipe_name, rec.recipe_version, rec.recipe_sha256) == ("bond-a", 2, "ab" * 32)
    assert rec.recipe_text == 'kind = "vacuum_film_bond"\n'
    assert (rec.lot_id, rec.operator, rec.equipment_id) == ("LOT-7", "ana", "bonder-01")
    assert (rec.software_version, rec.config_hash) == ("0.1.0", "cfg-1")
    assert (rec.state, rec.reason) == ("completed", "ok")
    assert rec.started_at == T0
    assert rec.ended_at == T0 + timedelta(minutes=5)
    assert rec.result == {"result": "completed", "metrics": {"peak_c": 245.1}}
    assert [(s.idx, s.type, s.name, s.result, s.started_t_s, s.ended_t_s) for s in rec.steps] == [
        (0, "purge", "purge", "completed", 0.0, 0.4),
        (1, "reflow", "reflow-main", "completed", 0.5, 1.9),
    ]
    assert rec.steps[1].detail == "peak reached"
    assert [(a.t_s, a.code, a.severity, a.message) for a in rec.alarms] == [
        (1.2, "TC_NOISE", "warning", "chip thermocouple noisy")
    ]
    assert store.samples("run-1") == [sample(i, "purge") for i in range(5)] + [
        sample(i) for i in range(5, 20)
    ]


def test_times_are_stored_as_utc(store: RunStore) -> None:
    new_run(store, started_at=datetime(2024, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=2))))
    rec = store.get_run("run-1")
    assert rec is not None
    assert rec.started_at.utcoffset() == timedelta(0)
    assert rec.started_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="time zone"):
        new_run(store, "run-2", started_at=datetime(2024, 5, 1, 8, 0))
    with pytest.raises(ValueError, match="time zone"):
        store.create_run("run-3", **{**RUN_FIELDS, "started_at": "2024-05-01T08:00:00"})
    # ISO-8601 text, as the result document carries it, is accepted
    store.create_run("run-4", **{**RUN_FIELDS, "started_at": "2024-05-01T08:00:00.250Z"})
    finish(store, "run-4", ended_at="2024-05-01T10:05:00+02:00")
    rec = store.get_run("run-4")
    assert rec is not None
    assert rec.started_at == datetime(2024, 5, 1, 8, 0, 0, 250_000, tzinfo=UTC)
    assert rec.ended_at == datetime(2024, 5, 1, 8, 5, tzinfo=UTC)


def test_unknown_and_duplicate_runs(store: RunStore) -> None:
    assert store.get_run("nope") is None
    assert store.samples("nope") == []
    with pytest.raises(UnknownRun):
        store.add_samples("nope", [sample(0)])
    new_run(store)
    with pytest.raises(RecordsError, match="already exists"):
        new_run(store)


def test_step_misuse_is_refused(store: RunStore) -> None:
    new_run(store)
    with pytest.raises(RecordsError, match="never started"):
        store.step_ended("run-1", 0, "completed", 1.0)
    store.step_started("run-1", 0, "purge", "purge", 0.0)
    with pytest.raises(RecordsError, match="already recorded"):
        store.step_started("run-1", 0, "purge", "purge", 0.0)
    with pytest.raises(ValueError, match="step result"):
        store.step_ended("run-1", 0, "done", 1.0)
    store.step_ended("run-1", 0, "completed", 1.0)
    with pytest.raises(RecordsError, match="already ended"):
        store.step_ended("run-1", 0, "failed", 1.0)


def test_list_runs_newest_first(store: RunStore) -> None:
    for i in range(3):
        new_run(store, f"run-{i}", started_at=T0 + timedelta(hours=i))
    assert [r.run_id for r in store.list_runs()] == ["run-2", "run-1", "run-0"]
    assert [r.run_id for r in store.list_runs(limit=1)] == ["run-2"]


# ---------------------------------------------------------------------------- immutability


def test_finished_run_cannot_be_changed_through_the_api(store: RunStore) -> None:
    new_run(store)
    store.step_started("run-1", 0, "purge", "purge", 0.0)
    finish(store, state="failed", reason="peak_in_window")
    with pytest.raises(RunFinished):
        finish(store)
    with pytest.raises(RunFinished):
        store.add_samples("run-1", [sample(0)])
    with pytest.raises(RunFinished):
        store.add_alarm("run-1", 1.0, "X", "alarm", "late")
    with pytest.raises(RunFinished):
        store.step_started("run-1", 1, "reflow", "reflow", 1.0)
    rec = store.get_run("run-1")
    assert rec is not None
    assert (rec.state, rec.reason) == ("failed", "peak_in_window")
    # The step left open is closed with the run: a finished record has no running step.
    assert rec.steps[0].result == "aborted"


def test_finished_run_cannot_be_changed_even_with_raw_sql(tmp_path: Path) -> None:
    with RunStore(tmp_path) as store:
        new_run(store)
        store.add_samples("run-1", [sample(0)])
        store.step_started("run-1", 0, "purge", "purge", 0.0)
        store.add_alarm("run-1", 0.0, "X", "warning", "x")
        finish(store)
        new_run(store, "run-2")  # a later run is free to write its own rows
        store.add_samples("run-2", [sample(1)])
    db = sqlite3.connect(tmp_path / DB_NAME)
    for statement in (
        "UPDATE runs SET state = 'completed', reason = 'edited' WHERE run_id = 'run-1'",
        "DELETE FROM runs WHERE run_id = 'run-1'",
        "UPDATE samples SET t_s = 5 WHERE run_id = 'run-1'",
        "DELETE FROM samples WHERE run_id = 'run-1'",
        "INSERT INTO samples (run_id, t_s, step, lamp_pct, temps_json, lamp_zones_json) "
        "VALUES ('run-1', 9, 'x', 0, '{}', '[]')",
        "UPDATE steps SET result = 'failed' WHERE run_id = 'run-1'",
        "DELETE FROM alarms WHERE run_id = 'run-1'",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="run is finished"):
            db.execute(statement)
    db.close()


# ---------------------------------------------------------------------------- schema


def test_schema_version_is_recorded_and_a_newer_database_is_refused(tmp_path: Path) -> None:
    RunStore(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(RecordsError, match="newer"):
        RunStore(tmp_path)
    assert not list((tmp_path / "owners").glob("*")), "a refused open leaves no owner file"


def test_a_database_of_the_previous_schema_opens_and_its_runs_read_back(tmp_path: Path) -> None:
    """A store written before the lead-lift columns existed: it migrates in place, its
    finished runs stay untouched and read back with the new values as None."""
    db = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    for migration in MIGRATIONS[:3]:  # what the previous release created
        for statement in migration:
            db.execute(statement)
    db.execute("PRAGMA user_version = 3")
    db.execute(
        "INSERT INTO runs (run_id, recipe_name, recipe_version, recipe_sha256, recipe_text, "
        "lot_id, operator, equipment_id, software_version, config_hash, started_at, owner) "
        "VALUES ('old-1', 'bond-a', 1, 'x', 'k', 'LOT', 'op', 'b-01', '0.0.9', 'c', "
        "'2024-05-01T08:00:00.000000Z', 'gone')"
    )
    db.execute(
        "INSERT INTO samples (run_id, t_s, step, setpoint_c, pressure_mbar, o2_ppm, lamp_pct, "
        "z_um, temps_json, lamp_zones_json) VALUES "
        "('old-1', 0.5, 'reflow', 200.0, 0.02, 0.4, 55.0, NULL, '{\"chip\":201.5}', '[55.0]')"
    )
    db.execute("UPDATE runs SET state = 'completed', ended_at = '2024-05-01T08:05:00.000000Z'")
    db.close()

    with RunStore(tmp_path) as store:
        (old,) = store.samples("old-1")
        assert (old.t_s, old.temps_c, old.pressure_mbar, old.lamp_zones_pct) == (
            0.5,
            {"chip": 201.5},
            0.02,
            (55.0,),
        )
        assert (old.z_force_n, old.uv_mw_cm2, old.uv_dose_mj_cm2) == (None, None, None)
        assert (old.cure_conversion, old.dispensed_ul) == (None, None)
        rec = store.get_run("old-1")
        assert rec is not None and rec.state == "completed"
        # New runs record the new values.
        new_run(store, "new-1")
        store.add_samples("new-1", [sample(i) for i in range(12)])
        assert store.samples("new-1") == [sample(i) for i in range(12)]
    db = sqlite3.connect(tmp_path / DB_NAME)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    with pytest.raises(sqlite3.IntegrityError, match="run is finished"):
        db.execute("UPDATE samples SET z_force_n = 1.0 WHERE run_id = 'old-1'")
    db.close()


# ---------------------------------------------------------------------------- crash recovery


def test_run_left_running_by_a_closed_store_is_aborted_on_reopen(tmp_path: Path) -> None:
    with RunStore(tmp_path) as store:
        new_run(store)
        store.step_started("run-1", 0, "purge", "purge", 0.0)
        store.step_ended("run-1", 0, "completed", 0.5)
        store.step_started("run-1", 1, "reflow", "reflow", 0.5)
        store.add_samples("run-1", [sample(i) for i in range(30)])
    with RunStore(tmp_path) as store:
        rec = store.get_run("run-1")
        assert rec is not None
        assert (rec.state, rec.reason, rec.ended_at) == ("aborted", INTERRUPTED_REASON, None)
        assert [s.result for s in rec.steps] == ["completed", "aborted"]
        assert rec.steps[1].ended_t_s == pytest.approx(2.9)  # the last recorded sample
        assert len(store.samples("run-1")) == 30


def test_a_second_store_never_aborts_a_live_run(tmp_path: Path) -> None:
    with RunStore(tmp_path) as writer:
        new_run(writer)
        with RunStore(tmp_path) as reader:  # e.g. `bonderd export` while the daemon runs
            rec = reader.get_run("run-1")
            assert rec is not None
            assert rec.state == "running"
        writer.add_samples("run-1", [sample(0)])
        finish(writer)
    with RunStore(tmp_path) as store:
        rec = store.get_run("run-1")
        assert rec is not None
        assert rec.state == "completed"
    assert list((tmp_path / "owners").glob("*")) == []


_CHILD = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from pathlib import Path
    from daemon.store.records import RunStore
    from daemon.store.trace import Sample

    store = RunStore(Path(sys.argv[1]))
    store.create_run(
        "crash-1", recipe_name="r", recipe_version=1, recipe_sha256="0" * 64,
        recipe_text="", lot_id="L", operator="o", equipment_id="e",
        software_version="0", config_hash="c", started_at=datetime.now(UTC),
    )
    store.step_started("crash-1", 0, "reflow", "reflow", 0.0)
    i = 0
    while True:
        batch = [
            Sample(t_s=(i + k) / 10, step="reflow", setpoint_c=None,
                   temps_c={"chip": float(i + k)}, pressure_mbar=5.0, o2_ppm=1.0,
                   lamp_pct=50.0)
            for k in range(5)
        ]
        store.add_samples("crash-1", batch)
        i += 5
        if i == 100:
            print("ready", flush=True)
    """
)


def test_sigkill_mid_run_leaves_a_readable_aborted_run(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        env=env,
        cwd=REPO,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    with RunStore(tmp_path) as store:
        rec = store.get_run("crash-1")
        assert rec is not None
        assert (rec.state, rec.reason) == ("aborted", INTERRUPTED_REASON)
        assert [s.result for s in rec.steps] == ["aborted"]
        samples = store.samples("crash-1")
        # Every committed batch is there, whole and in order.
        assert len(samples) >= 100
        assert len(samples) % 5 == 0
        assert [s.temps_c["chip"] for s in samples] == [float(i) for i in range(len(samples))]
        assert rec.steps[0].ended_t_s == samples[-1].t_s


_CHANNEL = st.text(min_size=1, max_size=12)  # any name, quotes and non-ASCII included
_VALUE = st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 5)


@given(temps=st.dictionaries(_CHANNEL, _VALUE, max_size=6))
@settings(max_examples=300, deadline=None)
def test_the_trace_temperature_column_is_written_as_json_dumps_writes_it(
    temps: dict[str, Any],
) -> None:
    # The trace writes its temperature column without the JSON encoder's per-call set-up
    # (twenty samples a second): what lands in the record must be byte for byte the same.
    assert _temps_json(temps) == json.dumps(temps, separators=(",", ":"))


def test_the_stored_temperature_column_is_compact_json(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "data")
    new_run(store)
    temps = {"chip": 250.125, "component 'a'": None, "chuck": -0.0, 'é"x': 1e-7, "big": 1e22}
    s = Sample(0.0, "reflow", None, temps, None, None, 0.0, lamp_zones_pct=(0.0, 12.5))
    store.add_samples("run-1", [s])
    got = store.samples("run-1")[0].temps_c
    store.close()
    db = sqlite3.connect(tmp_path / "data" / DB_NAME)
    row = db.execute("SELECT temps_json, lamp_zones_json FROM samples").fetchone()
    db.close()
    assert row == (json.dumps(temps, separators=(",", ":")), "[0.0,12.5]")
    assert got == temps
