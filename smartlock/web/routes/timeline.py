"""The timeline's API: events newest first (filtered, paged) and the pictures that go with them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from smartlock.errors import ConfigError
from smartlock.web.dashboard import DashboardDep
from smartlock.web.events import KINDS
from smartlock.web.routes.common import MAX_ROW_ID, jpeg_file, missing

router = APIRouter(prefix="/api/events")


@router.get("")
def list_events(
    d: DashboardDep,
    person: str | None = None,
    kind: str | None = None,
    before: int | None = Query(None, ge=1, le=MAX_ROW_ID),
    limit: int = Query(50, ge=1, le=200),
) -> dict[str, Any]:
    if kind and kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}")
    events = d.events.list(person=person or None, kind=kind or None, before=before, limit=limit)
    return {
        "events": [event.to_api() for event in events],
        "people": d.events.people(),
        "next_before": events[-1].id if len(events) == limit else None,
    }


@router.get("/{event_id}/thumb.jpg")
def event_thumb(event_id: int, d: DashboardDep) -> FileResponse:
    path = d.events.image_path(event_id)
    if path is None:
        raise missing("thumbnail")
    return jpeg_file(path)


@router.get("/{event_id}/frame.jpg")
def event_frame(event_id: int, d: DashboardDep) -> FileResponse:
    path = d.events.image_path(event_id, frame=True)
    if path is None:
        raise missing("frame")
    return jpeg_file(path)
