"""The live view's API: the camera's stream, snapshot and health (proxied), the faces in view, and the hook
the engine posts its analysed frames to (its webhook token, no session)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException

from smartlock.camera.mjpeg import jpeg_size
from smartlock.engine.analysis import MAX_LIVE_FACES
from smartlock.web.dashboard import DashboardDep
from smartlock.web.routes.webhook import require_engine_token

router = APIRouter(prefix="/api")
hook_router = APIRouter(include_in_schema=False)

LIVE_HOOK_PATH = "/hooks/engine/live"
MAX_LIVE_FRAME_BYTES = 768 * 2**10  # a 640x360 JPEG at quality 80 is 30-60 KB
LIVE_HOOK_BODY_BYTES = MAX_LIVE_FRAME_BYTES + 64 * 2**10


class LiveBox(BaseModel):
    left: float = Field(allow_inf_nan=False)
    top: float = Field(allow_inf_nan=False)
    right: float = Field(allow_inf_nan=False)
    bottom: float = Field(allow_inf_nan=False)


class LiveFace(BaseModel):
    box: LiveBox
    track: int = Field(ge=0)
    label: str | None = Field(default=None, max_length=200)
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    recognised_now: bool = False
    liveness: str | None = Field(default=None, max_length=40)


class LiveSummary(BaseModel):
    seq: int = Field(ge=0)
    time: float = Field(allow_inf_nan=False)
    width: int = Field(ge=0, le=16384)
    height: int = Field(ge=0, le=16384)
    analysed: bool = False
    threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    faces: list[LiveFace] = Field(max_length=MAX_LIVE_FACES)


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


@router.get("/live/frame.jpg")
def live_frame(d: DashboardDep, seq: int | None = None) -> Response:
    """The frame the engine analysed last (``seq``: that very frame, else 404): boxes belong on it."""
    jpeg = d.live.engine_frame(seq)
    if jpeg is None:
        raise HTTPException(404, detail="that frame is gone; ask /api/live/faces for the newest")
    return Response(jpeg, media_type="image/jpeg", headers={"cache-control": "no-store"})


@hook_router.post(LIVE_HOOK_PATH)
async def engine_analysis(request: Request, d: DashboardDep) -> dict[str, bool]:
    """The engine's analysed frame: multipart ``analysis`` (JSON) and optional ``frame`` (JPEG). The token is
    checked before a byte of the body is parsed; without it the answer is a plain 404."""
    require_engine_token(request, d)
    async with request.form(max_files=1, max_fields=1, max_part_size=MAX_LIVE_FRAME_BYTES + 1) as form:
        analysis, frame = form.get("analysis"), form.get("frame")
        if not isinstance(analysis, str):
            raise HTTPException(400, detail="no analysis field")
        try:
            summary = LiveSummary.model_validate_json(analysis)
        except ValidationError as err:
            raise HTTPException(400, detail=f"bad analysis: {err.errors()[0]['msg']}") from err
        jpeg = None
        if frame is not None:
            if isinstance(frame, str):
                raise HTTPException(400, detail="the frame must be a file")
            jpeg = await frame.read(MAX_LIVE_FRAME_BYTES + 1)
            if len(jpeg) > MAX_LIVE_FRAME_BYTES:
                raise HTTPException(413, detail="the frame is too large")
            if jpeg_size(jpeg) != (summary.width, summary.height):
                raise HTTPException(400, detail="the frame is not a JPEG of the announced size")
    d.live.from_engine(summary.model_dump(mode="json"), jpeg)
    return {"recorded": True}
