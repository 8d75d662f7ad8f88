"""The dashboard's timeline: engine events (unlocks, strangers, sightings) in SQLite, with frame thumbnails.

Repeated sightings of the same person (or of strangers) within ``coalesce_seconds`` update the newest row
(count, best confidence, last time) instead of adding a row per analysed frame, as long as nothing else
happened in between; unlocks are never merged.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from smartlock.fileio import atomic_write

KINDS = ("unlock", "stranger", "sighting", "lock")
MERGED_KINDS = ("stranger", "sighting")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    last_time REAL NOT NULL,
    kind TEXT NOT NULL,
    person TEXT,
    confidence REAL,
    count INTEGER NOT NULL DEFAULT 1,
    thumb INTEGER NOT NULL DEFAULT 0,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_time ON events (time);
CREATE INDEX IF NOT EXISTS events_person ON events (person, kind);
"""


@dataclass(frozen=True)
class Event:
    id: int
    time: float
    last_time: float
    kind: str
    person: str | None
    confidence: float | None
    count: int
    thumb: bool
    details: dict

    def to_api(self) -> dict:
        return {
            "id": self.id,
            "time": self.time,
            "last_time": self.last_time,
            "kind": self.kind,
            "person": self.person,
            "confidence": self.confidence,
            "count": self.count,
            "thumb": f"/api/events/{self.id}/thumb.jpg" if self.thumb else None,
            "frame": f"/api/events/{self.id}/frame.jpg" if self.thumb else None,
            "details": self.details,
        }


class EventStore:
    """Thread-safe event timeline in ``folder/events.db`` with thumbnails in ``folder/thumbs/``."""

    def __init__(self, folder: Path, coalesce_seconds: float = 15.0, max_events: int = 5000) -> None:
        self.folder = Path(folder)
        self.thumbs = self.folder / "thumbs"
        self.thumbs.mkdir(parents=True, exist_ok=True)
        self.coalesce_seconds = coalesce_seconds
        self.max_events = max_events
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.folder / "events.db", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(
        self,
        kind: str,
        person: str | None = None,
        confidence: float | None = None,
        when: float | None = None,
        details: dict | None = None,
    ) -> tuple[int, bool]:
        """Record an event; returns (row id, whether it is a new row rather than a merged sighting)."""
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}; known: {', '.join(KINDS)}")
        when = time.time() if when is None else when
        details_json = json.dumps(details or {}, default=str)[:20_000]
        with self._lock:
            if kind in MERGED_KINDS:
                # only into the newest row: a sighting after an unlock starts a row of its own
                row = self._db.execute(
                    "SELECT id, confidence, kind, person, last_time FROM events ORDER BY id DESC LIMIT 1"
                ).fetchone()
                if row is not None and (row[2], row[3]) == (kind, person) and \
                        row[4] >= when - self.coalesce_seconds:
                    values = [c for c in (row[1], confidence) if c is not None]
                    best = max(values) if values else None
                    self._db.execute(
                        "UPDATE events SET last_time = MAX(last_time, ?), count = count + 1, confidence = ? "
                        "WHERE id = ?",
                        (when, best, row[0]),
                    )
                    return row[0], False
            cursor = self._db.execute(
                "INSERT INTO events (time, last_time, kind, person, confidence, details) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (when, when, kind, person, confidence, details_json),
            )
            event_id = cursor.lastrowid
            assert event_id is not None  # sqlite sets it on every INSERT
            self._prune()
            return event_id, True

    def attach_images(self, event_id: int, thumb_jpeg: bytes, frame_jpeg: bytes) -> None:
        atomic_write(self.thumbs / f"{event_id}.jpg", thumb_jpeg)
        atomic_write(self.thumbs / f"{event_id}-frame.jpg", frame_jpeg)
        with self._lock:
            self._db.execute("UPDATE events SET thumb = 1 WHERE id = ?", (event_id,))

    def image_path(self, event_id: int, frame: bool = False) -> Path | None:
        path = self.thumbs / (f"{event_id}-frame.jpg" if frame else f"{event_id}.jpg")
        return path if path.is_file() else None

    def get(self, event_id: int) -> Event | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM events WHERE id = ?", (event_id,)).fetchone()
        return _event(row) if row else None

    def list(
        self,
        person: str | None = None,
        kind: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> builtins.list[Event]:
        """Newest first; ``before`` pages on by id."""
        clauses: builtins.list[str] = []
        params: builtins.list[object] = []
        if person:
            clauses.append("person = ?")
            params.append(person)
        if kind:
            clauses.append("kind = ?")
            params.append(kind)
        if before is not None:
            clauses.append("id < ?")
            params.append(before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        limit = max(1, min(500, limit))
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM events {where} ORDER BY id DESC LIMIT ?", (*params, limit)
            ).fetchall()
        return [_event(row) for row in rows]

    def people(self) -> builtins.list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT person FROM events WHERE person IS NOT NULL ORDER BY person"
            ).fetchall()
        return [row[0] for row in rows]

    def counts(self, kind: str = "unlock") -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT person, COUNT(*) FROM events WHERE kind = ? AND person IS NOT NULL GROUP BY person",
                (kind,),
            ).fetchall()
        return {person: count for person, count in rows}

    def last_time(self, kind: str, person: str | None = None) -> float | None:
        with self._lock:
            row = self._db.execute(
                "SELECT MAX(last_time) FROM events WHERE kind = ? AND (? IS NULL OR person = ?)",
                (kind, person, person),
            ).fetchone()
        return row[0] if row else None

    def _prune(self) -> None:
        (count,) = self._db.execute("SELECT COUNT(*) FROM events").fetchone()
        excess = count - self.max_events
        if excess <= 0:
            return
        old = self._db.execute("SELECT id FROM events ORDER BY id LIMIT ?", (excess,)).fetchall()
        for (old_id,) in old:
            for suffix in (".jpg", "-frame.jpg"):
                with contextlib.suppress(OSError):
                    (self.thumbs / f"{old_id}{suffix}").unlink()
        self._db.execute("DELETE FROM events WHERE id <= ?", (old[-1][0],))


_COLUMNS = "id, time, last_time, kind, person, confidence, count, thumb, details"


def _event(row: tuple) -> Event:
    try:
        details = json.loads(row[8])
    except ValueError:
        details = {}
    return Event(
        id=row[0], time=row[1], last_time=row[2], kind=row[3], person=row[4], confidence=row[5],
        count=row[6], thumb=bool(row[7]), details=details if isinstance(details, dict) else {},
    )
