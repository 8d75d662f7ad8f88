"""The timeline's API: events newest first (filtered, paged, unlocks grouped into visits), the pictures and
faces that go with them, and the CSV exports of the Events page (timeline, door audit, user activity)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response

from smartlock.errors import ConfigError
from smartlock.web import exports
from smartlock.web.clients import door_audit
from smartlock.web.dashboard import DashboardDep
from smartlock.web.events import KINDS, MAX_EXPORT
from smartlock.web.routes.common import MAX_ROW_ID, jpeg_file, missing

router = APIRouter(prefix="/api")

EventId = Annotated[int, PathParam(ge=1, le=MAX_ROW_ID)]
Since = Annotated[str | None, Query(max_length=64, description="ISO 8601 date or time (naive: UTC)")]
Until = Annotated[str | None, Query(max_length=64, description="ISO 8601; a bare date: to that day's end")]
# the user-actions audit, answering {"actions": [{"id", "time", "user", "action", "details"}, ...]}
ACTIVITY_PAGE = 1000  # its largest page


@router.get("/events")
def list_events(
    d: DashboardDep,
    person: str | None = None,
    kind: str | None = None,
    before: int | None = Query(None, ge=1, le=MAX_ROW_ID),
    limit: int = Query(50, ge=1, le=200),
    group: str | None = Query(None, description="'visits': consecutive unlocks of a person in one row"),
) -> dict[str, Any]:
    """Newest first. With ``group=visits`` each row is an event or a visit (its ``visit`` field: count,
    first and last time, and every unlock in it), and ``limit`` counts rows."""
    if kind and kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}")
    if group not in (None, "", "visits"):
        raise ConfigError("group must be 'visits' or left out")
    if group:
        rows, next_before = d.events.visits(person=person or None, kind=kind or None, before=before,
                                            limit=limit)
        return {"events": [row.to_api() for row in rows], "people": d.events.people(),
                "next_before": next_before}
    events = d.events.list(person=person or None, kind=kind or None, before=before, limit=limit)
    return {
        "events": [event.to_api() for event in events],
        "people": d.events.people(),
        "next_before": events[-1].id if len(events) == limit else None,
    }


@router.get("/events/{event_id}/faces")
def event_faces(event_id: EventId, d: DashboardDep) -> dict[str, Any]:
    """The frame's size and the faces in it (label, confidence, box in the frame's pixels, liveness when
    known); no faces for a row saved before faces were kept."""
    event = d.events.get(event_id)
    if event is None:
        raise missing("event")
    return d.events.faces(event_id) or {"width": 0, "height": 0, "faces": []}


@router.get("/events/{event_id}/thumb.jpg")
def event_thumb(event_id: EventId, d: DashboardDep) -> FileResponse:
    path = d.events.image_path(event_id)
    if path is None:
        raise missing("thumbnail")
    return jpeg_file(path)


@router.get("/events/{event_id}/frame.jpg")
def event_frame(event_id: EventId, d: DashboardDep) -> FileResponse:
    path = d.events.image_path(event_id, frame=True)
    if path is None:
        raise missing("frame")
    return jpeg_file(path)


@router.get("/events.csv")
def events_csv(d: DashboardDep, since: Since = None, until: Until = None) -> Response:
    """Every timeline event that started in the period, oldest first, one row per unlock."""
    start, end = exports.parse_period(since, until)
    return exports.csv_response(exports.events_csv(d.events.between(start, end)), "timeline", start, end)


@router.get("/door-audit.csv")
def door_audit_csv(d: DashboardDep, since: Since = None, until: Until = None) -> Response:
    """The door's audit of the period (its signed GET /events, page by page), oldest first."""
    start, end = exports.parse_period(since, until)
    rows = door_audit(d.door, start, end)
    return exports.csv_response(exports.door_audit_csv(rows), "door-audit", start, end)


@router.get("/audit.csv")
def activity_csv(d: DashboardDep, since: Since = None, until: Until = None) -> Response:
    """The users' actions of the period (the audit every signed-in user may read), oldest first."""
    start, end = exports.parse_period(since, until)
    rows: dict[Any, dict[str, Any]] = {}
    cursor = end
    for _ in range(MAX_EXPORT // ACTIVITY_PAGE):  # newest first, a page at a time, older each time
        page = d.audit.list(since=start, until=cursor, limit=ACTIVITY_PAGE)
        fresh = [row for row in page if row["id"] not in rows]
        rows.update((row["id"], row) for row in fresh)
        if len(page) < ACTIVITY_PAGE or not fresh:
            break
        cursor = min(row["time"] for row in page)  # until is inclusive: the ids already seen are skipped
    chosen = [row for row in rows.values() if exports.within(exports.seconds(row.get("time")), start, end)]
    chosen.sort(key=lambda row: (exports.seconds(row.get("time")) or 0.0, str(row.get("id"))))
    return exports.csv_response(exports.activity_csv(chosen), "activity", start, end)


