"""The door's audit log: one SQLite row per door action, refusal and service event, kept across restarts."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from smartlock.errors import ConfigError

SCHEMA_VERSION = 1
MAX_PAGE = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    time       REAL    NOT NULL,  -- Unix seconds
    action     TEXT    NOT NULL,  -- unlock, lock, status, events, relock, start, stop, ...
    outcome    TEXT    NOT NULL,  -- accepted, refused, error, info
    status     INTEGER,           -- HTTP status answered, for requests
    method     TEXT,
    path       TEXT,
    client     TEXT,              -- client address
    key_id     TEXT,
    reason     TEXT,
    person     TEXT,
    confidence REAL,
    source     TEXT,
    door       TEXT,              -- locked / unlocked / unknown, read back from the relay afterwards
    pin_level  TEXT               -- HIGH / LOW, read back from the pin afterwards
);
CREATE INDEX IF NOT EXISTS events_action ON events (action, outcome, id);
"""

COLUMNS = (
    "id", "time", "action", "outcome", "status", "method", "path", "client", "key_id", "reason",
    "person", "confidence", "source", "door", "pin_level",
)


class EventLog:
    """Append-only audit store. Thread-safe; WAL journal so readers never block the writer.

    Checkpoints (the only step that fsyncs) run in a background thread every ``checkpoint_interval``
    seconds instead of inside whichever request happens to fill the WAL, so a slow SD card never
    delays an answer.
    """

    def __init__(self, path: Path | str, *, checkpoint_interval: float = 2.0) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power cut may lose the last few events but never corrupts the file.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ConfigError(f"{self.path} was written by a newer smartlock (schema {version})")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.Error as err:
            raise ConfigError(f"cannot open the events database {self.path}: {err}") from err
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, args=(checkpoint_interval,), name="events-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self, interval: float) -> None:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=5000")
            while not self._closing.wait(interval):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # never blocks the writer
                except sqlite3.Error:
                    continue  # retried at the next interval; the WAL keeps every event meanwhile
        finally:
            db.close()

    def add(
        self,
        action: str,
        outcome: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        client: str | None = None,
        key_id: str | None = None,
        reason: str | None = None,
        person: str | None = None,
        confidence: float | None = None,
        source: str | None = None,
        door: str | None = None,
        pin_level: str | None = None,
        at: float | None = None,
    ) -> int:
        """Record one event; returns its id."""
        row = (
            time.time() if at is None else at, action, outcome, status, method, path, client, key_id,
            reason, person, confidence, source, door, pin_level,
        )
        with self._lock:
            cursor = self._db.execute(
                f"INSERT INTO events ({', '.join(COLUMNS[1:])}) VALUES ({', '.join('?' * len(row))})", row
            )
            return int(cursor.lastrowid or 0)

    def page(self, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
        """Events newest first; ``before`` is an event id (exclusive), for paging."""
        limit = max(1, min(int(limit), MAX_PAGE))
        query = f"SELECT {', '.join(COLUMNS)} FROM events"
        params: tuple[Any, ...] = ()
        if before is not None:
            query += " WHERE id < ?"
            params = (int(before),)
        query += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, (*params, limit)).fetchall()
        return [_to_dict(row) for row in rows]

    def last(self, action: str, outcome: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(COLUMNS)} FROM events WHERE action = ? AND outcome = ? "
                "ORDER BY id DESC LIMIT 1",
                (action, outcome),
            ).fetchone()
        return _to_dict(row) if row else None

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def close(self) -> None:
        self._closing.set()
        self._checkpointer.join(timeout=10)
        with self._lock:
            with contextlib.suppress(sqlite3.Error):  # if it fails, the next open replays the WAL
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()


def _to_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    event = dict(zip(COLUMNS, row, strict=True))
    event["time"] = datetime.fromtimestamp(event["time"], UTC).isoformat(timespec="milliseconds")
    return event
