"""The door's audit log: one SQLite row per door action, refusal and service event, with a bounded history.

A write that fails (disk full, read-only file system) raises AuditWriteError and leaves the reason in
``failure`` until a write succeeds again, so /health can say so; the unlock route audits before it moves
the relay and refuses the unlock when it cannot (see routes.py). History is bounded by age
(``retention_days``) and by ``max_rows``: a background thread deletes the oldest rows in short batches,
each holding the writer's lock only for one small DELETE, so an unlock waits at most for one batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from smartlock.errors import ConfigError, DoorError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
MAX_PAGE = 500
DEFAULT_RETENTION_DAYS = 90.0
DEFAULT_MAX_ROWS = 100_000
PRUNE_BATCH = 500  # rows per DELETE: a few milliseconds of the writer's lock on an SD card
PRUNE_INTERVAL = 60.0
# The WAL is cut back to this size after a checkpoint, and checkpointed early when it grows beyond it.
WAL_LIMIT = 8 * 2**20
_WAL_CHECK_EVERY = 64  # writes between two looks at the WAL's size

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    time       REAL    NOT NULL,  -- Unix seconds
    action     TEXT    NOT NULL,  -- unlock, lock, status, events, relock, start, stop, ...
    outcome    TEXT    NOT NULL,  -- accepted, refused, error, info, pending
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
    pin_level  TEXT,              -- HIGH / LOW, read back from the pin afterwards
    times      INTEGER NOT NULL DEFAULT 1  -- identical refusals this row stands for (see refusals.py)
);
CREATE INDEX IF NOT EXISTS events_action ON events (action, outcome, id);
"""

COLUMNS = (
    "id", "time", "action", "outcome", "status", "method", "path", "client", "key_id", "reason",
    "person", "confidence", "source", "door", "pin_level", "times",
)
_AMENDABLE = frozenset(COLUMNS[3:]) - {"times"}


class AuditWriteError(DoorError):
    """The audit log cannot be written (disk full, read-only, corrupt); the reason is in the message."""


def prepare_private_file(path: Path) -> None:
    """Create the folders the door makes (0700) and the database file (0600); tighten an existing file
    and its WAL/shared-memory files (SQLite gives those the database file's mode)."""
    missing = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # the umask may have taken bits off, never added: set it exactly
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if file.stat().st_mode & 0o077:
                os.chmod(file, 0o600)


class EventLog:
    """Audit store. Thread-safe; WAL journal so readers never block the writer.

    Checkpoints (the only step that fsyncs) and pruning run in a background thread, never inside a
    request. ``max_pages`` caps the database (SQLite's ``max_page_count``): a size-limited store, as
    a full disk is, for tests. ``on_prune_batch(deleted)`` is called after each pruning batch.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        checkpoint_interval: float = 2.0,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        max_rows: int = DEFAULT_MAX_ROWS,
        prune_interval: float = PRUNE_INTERVAL,
        prune_batch: int = PRUNE_BATCH,
        wal_limit: int = WAL_LIMIT,
        max_pages: int | None = None,
        on_prune_batch: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if retention_days <= 0 or max_rows < 1 or prune_batch < 1:
            raise ConfigError("retention_days, max_rows and prune_batch must be positive")
        self.path = Path(path)
        self.retention_days = retention_days
        self.max_rows = max_rows
        self.prune_interval = prune_interval
        self.prune_batch = prune_batch
        self.wal_limit = wal_limit
        self._on_prune_batch = on_prune_batch
        self._clock = clock
        self._wal_path = self.path.with_name(self.path.name + "-wal")
        try:
            prepare_private_file(self.path)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power cut may lose the last few events but never corrupts the file.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA wal_autocheckpoint=0")
            self._db.execute(f"PRAGMA journal_size_limit={int(wal_limit)}")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ConfigError(f"{self.path} was written by a newer smartlock (schema {version})")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(events)")}
            if "times" not in columns:  # schema 1
                self._db.execute("ALTER TABLE events ADD COLUMN times INTEGER NOT NULL DEFAULT 1")
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            if max_pages is not None:
                self._db.execute(f"PRAGMA max_page_count={int(max_pages)}")
        except (sqlite3.Error, OSError) as err:
            raise ConfigError(f"cannot open the events database {self.path}: {err}") from err
        self.failure: str | None = None  # why the last write failed; None once one succeeds
        self._writes = 0
        self._inserts_since_prune = 0
        self._prune_every = max(prune_batch, max_rows // 20)  # inserts that bring a prune forward
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._wake = threading.Event()
        self._background = threading.Thread(
            target=self._background_loop, args=(checkpoint_interval,), name="events-background", daemon=True
        )
        self._background.start()

    # -- writing -------------------------------------------------------------------------------------

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
        """Record one event; returns its id. Raises AuditWriteError when it cannot be written."""
        row = (
            self._clock() if at is None else at, action, outcome, status, method, path, client, key_id,
            reason, person, confidence, source, door, pin_level,
        )
        names = ", ".join(COLUMNS[1:-1])
        cursor = self._write(f"INSERT INTO events ({names}) VALUES ({', '.join('?' * len(row))})", row)
        return int(cursor.lastrowid or 0)

    def amend(self, event_id: int, **fields: Any) -> None:
        """Change some fields of an event (what happened after it was first written). AuditWriteError."""
        unknown = set(fields) - _AMENDABLE
        if unknown:
            raise ValueError(f"cannot amend {sorted(unknown)}")
        if fields:
            assignments = ", ".join(f"{name} = ?" for name in fields)
            self._write(f"UPDATE events SET {assignments} WHERE id = ?", (*fields.values(), event_id))

    def add_times(self, event_id: int, more: int) -> None:
        """Count ``more`` identical refusals into an event's ``times``. AuditWriteError."""
        self._write("UPDATE events SET times = times + ? WHERE id = ?", (int(more), event_id))

    def _write(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        with self._lock:
            try:
                cursor = self._db.execute(sql, params)
            except sqlite3.Error as err:
                self._failed(err)
                raise AuditWriteError(f"the audit cannot be written: {err}") from err
            if self.failure is not None:
                logger.warning("the audit can be written again (it failed: %s)", self.failure)
                self.failure = None
            self._writes += 1
            if sql.startswith("INSERT"):
                self._inserts_since_prune += 1
                if self._inserts_since_prune >= self._prune_every:
                    self._wake.set()  # prune now rather than at the next interval
            if self._writes % _WAL_CHECK_EVERY == 0 and self._wal_size() > self.wal_limit:
                self._wake.set()  # checkpoint now rather than at the next interval
            return cursor

    def _failed(self, err: sqlite3.Error) -> None:
        if self.failure is None:  # once per burst: a full disk fails every write until it is fixed
            logger.error("the audit cannot be written (%s): unlocks are refused until it can", err)
        self.failure = str(err)

    def _wal_size(self) -> int:
        try:
            return self._wal_path.stat().st_size
        except OSError:
            return 0

    # -- reading -------------------------------------------------------------------------------------

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

    # -- bounded history -----------------------------------------------------------------------------

    def prune(self) -> int:
        """Delete the rows older than the retention and those beyond ``max_rows``, oldest first, in
        batches of ``prune_batch``; returns how many went."""
        total = 0
        with self._lock:
            self._inserts_since_prune = 0
        while not self._closing.is_set():
            deleted = self._prune_batch()
            if not deleted:
                break
            total += deleted
            if self._on_prune_batch is not None:
                try:
                    self._on_prune_batch(deleted)
                except Exception:  # a hook must not end the thread that also checkpoints
                    logger.exception("the pruning hook failed")
        if total:
            logger.info("audit pruned: %d rows older than %g days or beyond %d rows", total,
                        self.retention_days, self.max_rows)
        return total

    def _prune_batch(self) -> int:
        cutoff = self._clock() - self.retention_days * 86400
        with self._lock:
            try:
                newest = self._db.execute("SELECT MAX(id) FROM events").fetchone()[0]
                if newest is None:
                    return 0
                over_cap = newest - self.max_rows  # ids only grow: every id up to this one is surplus
                oldest = self._db.execute(
                    "SELECT id, time FROM events ORDER BY id LIMIT ?", (self.prune_batch,)
                ).fetchall()
                last = None
                for event_id, at in oldest:  # only a prefix goes, so one cheap range DELETE does it
                    if event_id > over_cap and at >= cutoff:
                        break
                    last = event_id
                if last is None:
                    return 0
                return int(self._db.execute("DELETE FROM events WHERE id <= ?", (last,)).rowcount)
            except sqlite3.Error as err:
                logger.warning("audit pruning failed, retried later: %s", err)
                return 0

    def _background_loop(self, interval: float) -> None:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=5000")
            db.execute(f"PRAGMA journal_size_limit={int(self.wal_limit)}")
            self.prune()
            next_prune = time.monotonic() + self.prune_interval
            while not self._closing.is_set():
                self._wake.wait(interval)
                self._wake.clear()
                if self._closing.is_set():
                    break
                if time.monotonic() >= next_prune or self._inserts_since_prune >= self._prune_every:
                    self.prune()
                    next_prune = time.monotonic() + self.prune_interval
                if self.failure is not None:
                    with contextlib.suppress(AuditWriteError):  # the failure stays for /health meanwhile
                        self.add("audit", "info", reason=f"the audit can be written again (it failed: "
                                                         f"{self.failure})")
                with contextlib.suppress(sqlite3.Error):  # retried at the next interval
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # never blocks the writer
        finally:
            db.close()

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        self._background.join(timeout=10)
        with self._lock:
            with contextlib.suppress(sqlite3.Error):  # if it fails, the next open replays the WAL
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()


def _to_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    event = dict(zip(COLUMNS, row, strict=True))
    event["time"] = datetime.fromtimestamp(event["time"], UTC).isoformat(timespec="milliseconds")
    return event
