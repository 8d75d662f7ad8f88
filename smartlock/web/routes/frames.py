"""Frames to enroll from: captured from the live view (taken, listed, shown, dropped) and the collector's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from smartlock.engine.files import CollectedFrame
from smartlock.web.dashboard import DashboardDep
from smartlock.web.routes.common import jpeg_file, missing

router = APIRouter(prefix="/api")


@router.post("/captures")
def capture(d: DashboardDep) -> dict[str, Any]:
    capture_id = d.captures.add(d.camera.snapshot())  # a full disk: 503, logged once (web.storage)
    d.storage.succeeded()
    return {"id": capture_id, "image": f"/api/captures/{capture_id}.jpg"}


@router.get("/captures")
def captures(d: DashboardDep) -> dict[str, Any]:
    return {"captures": [{"id": c, "image": f"/api/captures/{c}.jpg"} for c in d.captures.list()]}


@router.get("/captures/{capture_id}.jpg")
def capture_image(capture_id: str, d: DashboardDep) -> FileResponse:
    path = d.captures.path(capture_id)
    if path is None:
        raise missing("captured frame")
    return jpeg_file(path)


@router.delete("/captures/{capture_id}")
def drop_capture(capture_id: str, d: DashboardDep) -> dict[str, Any]:
    d.captures.remove(capture_id)
    return {"message": "removed"}


@router.get("/collected")
def collected(d: DashboardDep, limit: int = Query(60, ge=1, le=500)) -> dict[str, Any]:
    frames = d.collected.list(limit) if d.collected is not None else []
    return {"frames": [collected_json(frame) for frame in frames],
            "folder": str(d.collected.folder) if d.collected is not None else None}


@router.get("/collected/{name}")
def collected_image(name: str, d: DashboardDep) -> FileResponse:
    path = d.collected.path(name) if d.collected is not None else None
    if path is None:
        raise missing("collected frame")
    return jpeg_file(path)


def collected_json(frame: CollectedFrame) -> dict[str, Any]:
    """A collected frame as the Enroll page lists it, with the URLs of the frame and its thumbnail (the
    best face crop, else the frame)."""
    return {
        "name": frame.name,
        "label": frame.label,
        "confidence": frame.confidence,
        "taken": frame.taken,
        "image": f"/api/collected/{frame.name}",
        "thumb": f"/api/collected/{frame.crop or frame.name}",
    }
