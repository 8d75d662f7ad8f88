"""The dashboard's timeline: engine events (unlocks, strangers, sightings) in SQLite, with frame thumbnails.

Repeated sightings of the same person (or of strangers) within ``coalesce_seconds`` update the newest row
(count, best confidence, last time) instead of adding a row per analysed frame, as long as nothing else
happened in between; unlocks are never merged in the store: they are grouped into visits when read
(``visits``: consecutive unlocks of one person at one door, each within ``VISIT_GAP`` of the next), so every
unlock stays a row of its own and can be listed, exported and shown.

Each row with a picture may also have the faces seen in it (``{id}-faces.json`` beside the pictures: the
frame's size and each face's label, confidence, box and liveness verdict) for the frame viewer.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartlock.fileio import atomic_write

KINDS = ("unlock", "stranger", "sighting", "lock", "spoof", "lockout")
MERGED_KINDS = ("stranger", "sighting", "spoof")
# details that must be equal too for a row to take in another event (a refusal's reason and the cues that
# caught it: a timeout must not hide the attacks that follow it)
MERGE_DETAILS = {"spoof": ("reason", "cues")}
VISIT_GAP = 300.0  # s: an unlock this soon after the person's previous one at that door: the same visit
MAX_VISIT = 500  # unlocks in one visit row (a longer loop starts a new row)
MAX_EXPORT = 100_000  # rows in one export
_SIDECARS = (".jpg", "-frame.jpg", "-faces.json")

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

    @property
    def door(self) -> str | None:
        """The door the event happened at, when the engine names it (one engine drives one door)."""
        door = self.details.get("door")
        return door if isinstance(door, str) else None

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
            "faces": f"/api/events/{self.id}/faces" if self.thumb else None,
            "details": self.details,
        }


@dataclass(frozen=True)
class Visit:
    """A timeline row as the Events page shows it: one event, or a visit of several unlocks (newest first)."""

    events: tuple[Event, ...]

    @property
    def newest(self) -> Event:
        return self.events[0]

    @property
    def oldest(self) -> Event:
        return self.events[-1]

    def continues_with(self, event: Event, gap: float = VISIT_GAP, max_size: int = MAX_VISIT) -> bool:
        """Whether ``event`` (the next older row) belongs to this visit."""
        last = self.oldest
        return (
            event.kind == "unlock" and last.kind == "unlock" and event.person is not None
            and event.person == last.person and event.door == last.door
            and 0 <= last.time - event.last_time <= gap and len(self.events) < max_size
        )

    def to_api(self) -> dict[str, Any]:
        """The newest event's row, with ``visit`` (count, first and last time, its unlocks) when grouped."""
        row = self.newest.to_api()
        row["visit"] = None if len(self.events) == 1 else {
            "count": len(self.events),
            "first_time": self.oldest.time,
            "last_time": self.newest.last_time,
            "unlocks": [event.to_api() for event in self.events],
        }
        return row


def group_visits(events: Iterable[Event], gap: float = VISIT_GAP, max_size: int = MAX_VISIT) -> list[Visit]:
    """Rows of ``events`` (newest first) with consecutive unlocks of one person at one door, each within
    ``gap`` s of the next, grouped into one visit."""
    rows: list[Visit] = []
    for event in events:
        if rows and rows[-1].continues_with(event, gap, max_size):
            rows[-1] = Visit((*rows[-1].events, event))
        else:
            rows.append(Visit((event,)))
    return rows


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
                    "SELECT id, confidence, kind, person, last_time, details FROM events "
                    "ORDER BY id DESC LIMIT 1"
                ).fetchone()
                if row is not None and (row[2], row[3]) == (kind, person) and \
                        row[4] >= when - self.coalesce_seconds and \
                        _same_details(row[5], details or {}, MERGE_DETAILS.get(kind, ())):
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

    def attach_images(self, event_id: int, thumb_jpeg: bytes, frame_jpeg: bytes,
                      faces: dict[str, Any] | None = None) -> None:
        """The row's thumbnail and frame, and (``faces``) what the frame viewer draws on the frame."""
        if faces is not None:
            atomic_write(self.thumbs / f"{event_id}-faces.json", json.dumps(faces).encode("utf-8"))
        atomic_write(self.thumbs / f"{event_id}.jpg", thumb_jpeg)
        atomic_write(self.thumbs / f"{event_id}-frame.jpg", frame_jpeg)
        with self._lock:
            self._db.execute("UPDATE events SET thumb = 1 WHERE id = ?", (event_id,))

    def faces(self, event_id: int) -> dict[str, Any] | None:
        """The faces stored with the row's frame (``attach_images``), None when it has none."""
        try:
            document = json.loads((self.thumbs / f"{event_id}-faces.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return document if isinstance(document, dict) else None

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

    def visits(
        self,
        person: str | None = None,
        kind: str | None = None,
        before: int | None = None,
        limit: int = 50,
        gap: float = VISIT_GAP,
    ) -> tuple[builtins.list[Visit], int | None]:
        """At most ``limit`` rows (events or visits), newest first, and the ``before`` of the next page (None
        at the end). A visit is never cut by a page: the page reads on until its last visit has ended."""
        limit = max(1, min(500, limit))
        rows: builtins.list[Visit] = []
        for event in self._walk(person, kind, before):
            if rows and rows[-1].continues_with(event, gap):
                rows[-1] = Visit((*rows[-1].events, event))
            elif len(rows) == limit:
                return rows, rows[-1].oldest.id
            else:
                rows.append(Visit((event,)))
        return rows, None

    def _walk(self, person: str | None, kind: str | None, before: int | None) -> Iterator[Event]:
        """The events, newest first, read a page at a time (the lock is never held between pages)."""
        while True:
            page = self.list(person=person, kind=kind, before=before, limit=200)
            yield from page
            if len(page) < 200:
                return
            before = page[-1].id

    def between(self, since: float | None = None, until: float | None = None, limit: int = MAX_EXPORT,
                kinds: tuple[str, ...] = KINDS, newest_first: bool = False) -> builtins.list[Event]:
        """The events of ``kinds`` that started in [since, until), oldest first (or the newest ``limit``
        newest first), at most ``limit``."""
        marks = ", ".join("?" for _ in kinds)
        order = "DESC" if newest_first else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE kind IN ({marks}) AND (? IS NULL OR time >= ?) "
                f"AND (? IS NULL OR time < ?) ORDER BY time {order}, id {order} LIMIT ?",
                (*kinds, since, since, until, until, limit),
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
            for suffix in _SIDECARS:
                with contextlib.suppress(OSError):
                    (self.thumbs / f"{old_id}{suffix}").unlink()
        self._db.execute("DELETE FROM events WHERE id <= ?", (old[-1][0],))


_COLUMNS = "id, time, last_time, kind, person, confidence, count, thumb, details"


def _same_details(saved: str, details: dict, keys: tuple[str, ...]) -> bool:
    if not keys:
        return True
    try:
        previous = json.loads(saved)
    except ValueError:
        return False
    return isinstance(previous, dict) and all(previous.get(key) == details.get(key) for key in keys)


def _event(row: tuple) -> Event:
    try:
        details = json.loads(row[8])
    except ValueError:
        details = {}
    return Event(
        id=row[0], time=row[1], last_time=row[2], kind=row[3], person=row[4], confidence=row[5],
        count=row[6], thumb=bool(row[7]), details=details if isinstance(details, dict) else {},
    )
