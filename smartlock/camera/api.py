"""The camera's HTTP face: the live page, the MJPEG stream, a snapshot and health.

``create_app`` only assembles: the routes live on a module-level router and find the hub and the token
in ``app.state`` through dependencies, so a test builds the app over any hub (a fake source included).
With a token, stream and snapshot need it and every frame is signed with it (``signing``); /health stays
public and carries no frame data.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from string import Template
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from smartlock.camera.mjpeg import CONTENT_TYPE
from smartlock.camera.signing import PROOF_SCHEME, FrameSigner, proof_matches, viewing_token
from smartlock.camera.stream import FrameHub
from smartlock.errors import CameraError
from smartlock.service import Health, create_api_app

# The seed's picamera server sent these with the stream; proxies and browsers must not cache frames.
NO_CACHE = {"Age": "0", "Cache-Control": "no-cache, private", "Pragma": "no-cache", "X-Accel-Buffering": "no"}
SNAPSHOT_WAIT = 3.0  # a snapshot asked for before the first frame waits this long for it
MAX_BODY_BYTES = 1024  # the camera takes no request bodies
DESCRIPTION = "MJPEG camera stream: one capture, one JPEG encode per frame, any number of viewers."


class CameraHealth(Health):
    """The shared /health answer plus the camera's own facts (``state`` is the hub's own word)."""

    state: str = Field(description="starting | ok | failing | stopped")
    source: str
    fps: float = Field(description="frames per second measured over the last seconds")
    nominal_fps: float | None = Field(description="the source's own frame rate, when it has one")
    clients: int = Field(description="connected stream clients")
    seconds_since_last_frame: float | None
    frames: int = Field(description="frames captured since start")
    width: int | None
    height: int | None
    error: str | None = Field(description="why the source is failing, when it is")


class Message(BaseModel):
    message: str


def token_matches(supplied: str | None, expected: str) -> bool:
    """Constant-time comparison, so the answer time does not tell how much of a guess was right."""
    if supplied is None:
        return False
    return hmac.compare_digest(supplied.encode("utf-8"), expected.encode("utf-8"))


def supplied_token(request: Request) -> str | None:
    """The token from ``Authorization: Bearer``, ``X-Token`` or ``?token=``, in that order."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("x-token") or request.query_params.get("token")


def camera_hub(request: Request) -> FrameHub:
    hub: FrameHub = request.app.state.camera_hub
    return hub


def camera_token(request: Request) -> str | None:
    token: str | None = request.app.state.camera_token
    return token


def proves_token(request: Request, token: str) -> bool:
    """Whether the request carries a fresh ``Authorization: Smartlock-Proof`` for ``token`` (what the engine,
    the collector and relays send, so the token itself never reaches whoever answers their URL)."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == PROOF_SCHEME.lower() and proof_matches(token, credentials)


def authorize(request: Request, token: Annotated[str | None, Depends(camera_token)]) -> None:
    """401 unless the app has no token or the request carries it (or a proof of it)."""
    allowed = (token is None or token_matches(supplied_token(request), viewing_token(token))
               or proves_token(request, token))
    if not allowed:
        raise HTTPException(
            401,
            "this camera needs a token: Authorization: Bearer TOKEN, X-Token: TOKEN or ?token=TOKEN",
            headers={"WWW-Authenticate": 'Bearer realm="smartlock camera"'},
        )


Hub = Annotated[FrameHub, Depends(camera_hub)]
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "missing or wrong token"}
}

router = APIRouter()


@functools.cache
def _template() -> Template:
    return Template(resources.files("smartlock.camera").joinpath("index.html").read_text(encoding="utf-8"))


def _page(stream_url: str, note: str) -> str:
    return _template().safe_substitute(stream_url=html.escape(stream_url), note=html.escape(note))


async def _stream_parts(hub: FrameHub) -> AsyncIterator[bytes]:
    with hub.client():
        seq = 0
        while not hub.closed:
            frame = await hub.next_frame(seq, timeout=5.0)
            if frame is not None:
                seq = frame.seq
                yield frame.part


@router.get("/", response_class=HTMLResponse, summary="Page showing the live stream")
@router.get("/index.html", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request, token: Annotated[str | None, Depends(camera_token)]) -> HTMLResponse:
    supplied = supplied_token(request)
    if token is None:
        return HTMLResponse(_page("stream.mjpg", ""))
    if token_matches(supplied, viewing_token(token)):
        # Only a token that matched is echoed into the page, URL-quoted and HTML-escaped.
        return HTMLResponse(_page(f"stream.mjpg?token={quote(supplied or '', safe='')}", ""))
    return HTMLResponse(_page("stream.mjpg", "This camera needs a token: open this page as /?token=TOKEN."))


@router.get(
    "/stream.mjpg",
    summary="Live MJPEG stream (multipart/x-mixed-replace; boundary=FRAME); never ends",
    response_class=StreamingResponse,
    responses={200: {"content": {CONTENT_TYPE: {}}}, **UNAUTHORIZED},
    dependencies=[Depends(authorize)],
)
async def stream(hub: Hub) -> StreamingResponse:
    return StreamingResponse(_stream_parts(hub), media_type=CONTENT_TYPE, headers=NO_CACHE)


@router.get(
    "/snapshot.jpg",
    summary="The newest frame as JPEG",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}},
        503: {"model": Message, "description": "the source is failing"},
        **UNAUTHORIZED,
    },
    dependencies=[Depends(authorize)],
)
async def snapshot(hub: Hub) -> Response:
    frame = await hub.current_frame(timeout=SNAPSHOT_WAIT)
    health = hub.health()
    if frame is None or health["state"] != "ok":
        problem = health["error"] or f"camera is {health['state']}, no frame yet"
        raise CameraError(f"no current frame: {problem}")
    headers = {"Cache-Control": "no-store", "X-Timestamp": f"{frame.timestamp:.6f}", **frame.headers}
    return Response(frame.jpeg, media_type="image/jpeg", headers=headers)


@router.get("/health", response_model=CameraHealth, summary="Source state, measured fps, connected clients")
async def health(hub: Hub) -> Health:
    facts = hub.health()
    state = facts["state"]
    problem = None if state == "ok" else facts["error"] or f"the camera is {state}, no frame yet"
    return CameraHealth.of("camera", problems=[problem] if problem else [], **facts)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """With ``manage_hub``, the hub's capture thread runs from start-up to shutdown."""
    hub: FrameHub = app.state.camera_hub
    manage: bool = app.state.camera_manage_hub
    if manage:
        hub.start()
    try:
        yield
    finally:
        if manage:
            await asyncio.to_thread(hub.stop)


def create_app(hub: FrameHub, token: str | None = None, *, manage_hub: bool = True) -> FastAPI:
    """The camera service over ``hub``; with ``token``, stream and snapshot need it (frames are personal)
    and the hub signs every frame with it (unless it was given a signer of its own).

    With ``manage_hub`` the app starts the hub's capture thread at start-up and stops it at shutdown.
    """
    if token is not None and not token:
        raise ValueError("an empty token would let anyone in; pass None for no token")
    if token is not None and hub.signer is None:
        hub.signer = FrameSigner(token)
    app = create_api_app("smartlock camera", DESCRIPTION, max_body_bytes=MAX_BODY_BYTES, lifespan=lifespan)
    app.state.camera_hub = hub
    app.state.camera_token = token
    app.state.camera_manage_hub = manage_hub
    app.include_router(router)
    return app
