"""The live view's API: the camera's stream, snapshot and health (proxied), and the faces in view."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse

from smartlock.web.dashboard import DashboardDep

router = APIRouter(prefix="/api")


@router.get("/camera/stream.mjpg")
async def camera_stream(d: DashboardDep) -> StreamingResponse:
    content_type, body = await d.camera.stream()
    return StreamingResponse(body, media_type=content_type, headers={"cache-control": "no-store"})


@router.get("/camera/snapshot.jpg")
def camera_snapshot(d: DashboardDep) -> Response:
    return Response(d.camera.snapshot(), media_type="image/jpeg")


@router.get("/camera/health")
def camera_health(d: DashboardDep) -> dict[str, Any]:
    return d.camera.health()


@router.get("/live/faces")
def live_faces(d: DashboardDep) -> dict[str, Any]:
    return {**d.live.latest().to_api(), "threshold": d.settings.current.threshold}
