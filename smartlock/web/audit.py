"""The audit of what users did through the dashboard (SQLite, bounded): enrollments, removals, locks,
account changes, sign-ins, settings; ``record_action`` is how any route adds to it.

Retention is bounded like the timeline's: at most ``max_actions`` rows, the oldest dropped first. Failed
sign-ins and refused requests (which anybody on the network can cause) are kept apart, at most
``max_noise`` of them, so a flood of them cannot push the real changes out of the audit.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smartlock.web.storage import storage_trouble

if TYPE_CHECKING:
    from smartlock.web.dashboard import Dashboard

logger = logging.getLogger(__name__)

NOISE = ("sign-in-failed", "refused")  # actions anybody can cause: bounded on their own
MAX_DETAILS_CHARS = 4000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    user TEXT,
    action TEXT NOT NULL,
    noise INTEGER NOT NULL DEFAULT 0,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS actions_time ON actions (time);
CREATE INDEX IF NOT EXISTS actions_noise ON actions (noise, id);
"""


class AuditLog:
    """Thread-safe audit in ``folder/audit.db`` (0600)."""

    def __init__(self, folder: Path, max_actions: int = 10_000, max_noise: int = 1_000) -> None:
        self.path = Path(folder) / "audit.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_actions = max_actions
        self.max_noise = max_noise
        self._lock = threading.Lock()
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))  # private before SQLite writes
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record(self, user: str | None, action: str, details: dict | None = None,
               when: float | None = None) -> int:
        """Add one action; its id. Raises sqlite3.Error / OSError when it cannot be written."""
        text = json.dumps(details or {}, default=str, ensure_ascii=True)
        if len(text) > MAX_DETAILS_CHARS:
            text = json.dumps({"truncated": text[:MAX_DETAILS_CHARS]})
        noise = 1 if action in NOISE else 0
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO actions (time, user, action, noise, details) VALUES (?, ?, ?, ?, ?)",
                (time.time() if when is None else when, user, action[:64], noise, text),
            )
            row_id = cursor.lastrowid
            assert row_id is not None  # sqlite sets it on every INSERT
            self._prune(noise, self.max_noise if noise else self.max_actions)
        return row_id

    def list(self, since: float | None = None, until: float | None = None,
             limit: int = 100) -> builtins.list[dict[str, Any]]:
        """Newest first, as GET /api/audit answers: id, time (epoch s), user, action, details."""
        clauses, params = [], []
        if since is not None:
            clauses.append("time >= ?")
            params.append(since)
        if until is not None:
            clauses.append("time <= ?")
            params.append(until)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, time, user, action, details FROM actions {where} ORDER BY id DESC LIMIT ?",
                (*params, max(1, min(1000, limit))),
            ).fetchall()
        return [{"id": r[0], "time": r[1], "user": r[2], "action": r[3], "details": _details(r[4])}
                for r in rows]

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM actions").fetchone()
        return int(count)

    def _prune(self, noise: int, keep: int) -> None:
        row = self._db.execute(
            "SELECT id FROM actions WHERE noise = ? ORDER BY id DESC LIMIT 1 OFFSET ?", (noise, keep)
        ).fetchone()
        if row is not None:
            self._db.execute("DELETE FROM actions WHERE noise = ? AND id <= ?", (noise, row[0]))


def _details(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def record_action(dashboard: Dashboard, user: str | None, action: str, details: dict | None = None) -> None:
    """Add ``action`` by ``user`` to the dashboard's audit. Never raises: the change it records has already
    happened, so a full disk is reported (dashboard.storage, once) and any other failure logged."""
    try:
        dashboard.audit.record(user, action, details)
    except (sqlite3.Error, OSError) as err:
        if storage_trouble(err):
            dashboard.storage.failed(f"audit of {action}", err)
        else:
            logger.error("cannot record %r by %s in the audit: %s", action, user, err)
