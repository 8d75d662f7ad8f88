"""CSV exports of the Events page (timeline, door audit, user activity) for a chosen period.

Times are ISO 8601 UTC; the csv module quotes commas, quotes and line breaks; a cell that a spreadsheet
would read as a formula (starting with = + - @, or a tab or carriage return) gets a leading ``'``
(CSV injection: a name like ``=HYPERLINK(...)`` stays text).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi.responses import Response

from smartlock.errors import ConfigError
from smartlock.web.events import Event

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

EVENT_COLUMNS = ("id", "time", "last_time", "kind", "person", "confidence", "count", "door", "details")
DOOR_COLUMNS = ("id", "time", "action", "outcome", "status", "method", "path", "client", "key_id", "reason",
                "person", "confidence", "source", "door", "pin_level", "times")
ACTIVITY_COLUMNS = ("id", "time", "user", "action", "details")


def parse_moment(text: str | None, name: str, end: bool = False) -> float | None:
    """Unix seconds of an ISO 8601 date or time (naive: UTC); a bare date as ``until`` (``end``) means the
    end of that day. None when not given; ConfigError (400) naming the parameter otherwise."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        if len(text) <= 10 and "T" not in text:
            day = date.fromisoformat(text)
            moment = datetime.combine(day + timedelta(days=1) if end else day, time(), UTC)
        else:
            moment = datetime.fromisoformat(text)
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError) as err:
        raise ConfigError(
            f"{name} must be an ISO 8601 date or time like 2026-11-29 or 2026-11-29T10:31:00Z, "
            f"not {text[:40]!r}"
        ) from err
    try:
        return moment.timestamp()
    except (OverflowError, OSError, ValueError) as err:
        raise ConfigError(f"{name} is out of range") from err


def parse_period(since: str | None, until: str | None) -> tuple[float | None, float | None]:
    """(since, until) in Unix seconds; ``until`` must come after ``since``."""
    start, end = parse_moment(since, "since"), parse_moment(until, "until", end=True)
    if start is not None and end is not None and end <= start:
        raise ConfigError("until must be later than since")
    return start, end


def iso(value: Any) -> str:
    """An ISO 8601 UTC time (``2026-11-29T10:31:17.250Z``) of Unix seconds or of an ISO text; '' if none."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return ""
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        moment = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    else:
        return str(value)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds(value: Any) -> float | None:
    """Unix seconds of a number or an ISO text (naive: UTC); None when it is neither."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return None


def cell(value: Any) -> str:
    """One CSV cell as text, defused when a spreadsheet would run it as a formula."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, default=str)
    else:
        text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(value) for value in row])
    return out.getvalue()


def csv_response(text: str, name: str, since: float | None, until: float | None) -> Response:
    """A CSV download named after what it holds and its period."""
    def stamp(value: float | None, fallback: str) -> str:
        if value is None:
            return fallback
        return datetime.fromtimestamp(value, UTC).strftime("%Y%m%dT%H%M%SZ")

    filename = f"smartlock-{name}-{stamp(since, 'start')}-{stamp(until, 'now')}.csv"
    return Response(text.encode("utf-8"), media_type="text/csv; charset=utf-8", headers={
        "content-disposition": f'attachment; filename="{filename}"', "cache-control": "no-store"})


def events_csv(events: Iterable[Event]) -> str:
    return csv_text(EVENT_COLUMNS, (
        (e.id, iso(e.time), iso(e.last_time), e.kind, e.person, e.confidence, e.count, e.door,
         {k: v for k, v in e.details.items() if k != "door"} or None)
        for e in events))


def door_audit_csv(rows: Iterable[dict[str, Any]]) -> str:
    return csv_text(DOOR_COLUMNS, (
        [iso(row.get(column)) if column == "time" else row.get(column) for column in DOOR_COLUMNS]
        for row in rows))


def activity_csv(actions: Iterable[dict[str, Any]]) -> str:
    return csv_text(ACTIVITY_COLUMNS, (
        [iso(row.get(column)) if column == "time" else row.get(column) for column in ACTIVITY_COLUMNS]
        for row in actions))


def within(moment: float | None, since: float | None, until: float | None) -> bool:
    """Whether ``moment`` lies in [since, until) (an unknown moment does not)."""
    if moment is None:
        return False
    return (since is None or moment >= since) and (until is None or moment < until)
