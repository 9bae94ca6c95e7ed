"""What `bonderd serve` keeps on disk besides the run records, in the same SQLite database.

- The event outbox: every MQTT event is written here, with its per-equipment ``seq``, in the
  same call that produces it and before anybody tries to publish it. The MQTT adapter
  publishes pending rows in ``seq`` order and marks each delivered once the broker has
  acknowledged it (QoS 1), so events produced while the broker is unreachable, or while
  the daemon was down, are delivered after reconnection in order (ADR 0010).
- Command replies, by ``command_id``: a repeated command gets the first reply again and
  is not executed twice, across restarts too.
- A few values that must survive a restart: the control mode and the active alarms.

The tables are created by the run store's migrations (``daemon/store/records.py``); open the
:class:`RunStore` first.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from daemon.store.records import DB_NAME

_BUSY_TIMEOUT_S: Final = 2.0
# Delivered events are kept this many per equipment for diagnosis, then pruned.
KEEP_DELIVERED: Final = 10_000
KEEP_REPLIES: Final = 100_000


def safe_text(text: str) -> str:
    """``text`` with whatever UTF-8 cannot carry (lone surrogates, including the undecodable
    bytes of a file name as ``os`` hands them over) spelt as ``\\xNN`` / ``\\udNNN``."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def json_text(doc: Any, indent: int | None = None) -> str:
    """JSON for SQLite and MQTT: UTF-8 as it is, or ASCII escapes where a str holds a lone
    surrogate (``json`` spells it ``\\udNNN``, valid UTF-8 bytes); never raises on text."""
    text = json.dumps(doc, allow_nan=False, default=str, ensure_ascii=False, indent=indent)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(doc, allow_nan=False, default=str, ensure_ascii=True, indent=indent)
    return text


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class PendingEvent:
    seq: int
    event: str
    payload: dict[str, Any]  # the whole MQTT payload, `event`, `seq` and `ts` included


class ServeDb:
    """One connection to the daemon's database for the serve-side tables."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / DB_NAME
        self.db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        self.db.execute("PRAGMA synchronous=NORMAL")
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
        if "event_outbox" not in tables:
            self.db.close()
            raise RuntimeError(f"{self.path}: open the RunStore first (serve tables missing)")

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.close()


class Outbox:
    """The ordered, durable event log of one equipment."""

    def __init__(self, db: ServeDb, equipment_id: str) -> None:
        self._db = db
        self.equipment_id = equipment_id

    def append(self, event: str, fields: dict[str, Any]) -> PendingEvent:
        """Give the event the next ``seq`` and store it; committed when this returns."""
        ts = utc_now()
        with self._db.tx() as db:
            row = db.execute(
                "SELECT last_seq FROM event_seq WHERE equipment_id = ?", (self.equipment_id,)
            ).fetchone()
            seq = (row[0] if row is not None else 0) + 1
            db.execute(
                "INSERT INTO event_seq (equipment_id, last_seq) VALUES (?, ?) "
                "ON CONFLICT (equipment_id) DO UPDATE SET last_seq = excluded.last_seq",
                (self.equipment_id, seq),
            )
            # `event`, `seq`, `ts` first and never overridden by a field of the same name.
            payload = {"event": event, "seq": seq, "ts": ts}
            payload.update({k: v for k, v in fields.items() if k not in payload})
            db.execute(
                "INSERT INTO event_outbox (equipment_id, seq, event, payload_json, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    self.equipment_id,
                    seq,
                    event,
                    json_text(payload),
                    ts,
                ),
            )
        return PendingEvent(seq, event, payload)

    def pending(self, limit: int = 100) -> list[PendingEvent]:
        rows = self._db.db.execute(
            "SELECT seq, event, payload_json FROM event_outbox "
            "WHERE equipment_id = ? AND delivered_at IS NULL ORDER BY seq LIMIT ?",
            (self.equipment_id, limit),
        ).fetchall()
        return [PendingEvent(seq, event, json.loads(text)) for seq, event, text in rows]

    def pending_count(self) -> int:
        row = self._db.db.execute(
            "SELECT count(*) FROM event_outbox WHERE equipment_id = ? AND delivered_at IS NULL",
            (self.equipment_id,),
        ).fetchone()
        return int(row[0])

    def mark_delivered(self, seq: int) -> None:
        with self._db.tx() as db:
            db.execute(
                "UPDATE event_outbox SET delivered_at = ? WHERE equipment_id = ? AND seq = ?",
                (utc_now(), self.equipment_id, seq),
            )
            if seq % 1000 == 0:
                db.execute(
                    "DELETE FROM event_outbox WHERE equipment_id = ? AND delivered_at IS NOT NULL "
                    "AND seq <= ?",
                    (self.equipment_id, seq - KEEP_DELIVERED),
                )

    def last_seq(self) -> int:
        row = self._db.db.execute(
            "SELECT last_seq FROM event_seq WHERE equipment_id = ?", (self.equipment_id,)
        ).fetchone()
        return int(row[0]) if row is not None else 0


class CommandLog:
    """The first reply to every ``command_id``, so that a repeat is answered, not re-run."""

    def __init__(self, db: ServeDb) -> None:
        self._db = db
        self._count = 0

    def reply_for(self, command_id: str) -> dict[str, Any] | None:
        row = self._db.db.execute(
            "SELECT reply_json FROM command_replies WHERE command_id = ?", (command_id,)
        ).fetchone()
        return json.loads(row[0]) if row is not None else None

    def record(self, command_id: str, command: str, reply: dict[str, Any]) -> None:
        with self._db.tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO command_replies (command_id, command, reply_json, "
                "received_at) VALUES (?, ?, ?, ?)",
                (command_id, command, json.dumps(reply, default=str), utc_now()),
            )
            self._count += 1
            if self._count % 1000 == 0:
                db.execute(
                    "DELETE FROM command_replies WHERE rowid <= "
                    "(SELECT max(rowid) FROM command_replies) - ?",
                    (KEEP_REPLIES,),
                )


class KeyValues:
    """Small JSON values that must survive a restart."""

    def __init__(self, db: ServeDb) -> None:
        self._db = db

    def get(self, key: str, default: Any) -> Any:
        row = self._db.db.execute(
            "SELECT value_json FROM serve_state WHERE key = ?", (key,)
        ).fetchone()
        return json.loads(row[0]) if row is not None else default

    def put(self, key: str, value: Any) -> None:
        with self._db.tx() as db:
            db.execute(
                "INSERT INTO serve_state (key, value_json) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value_json = excluded.value_json",
                (key, json.dumps(value, default=str)),
            )
