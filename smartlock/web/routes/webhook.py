"""The engine's webhook: its events become timeline rows, each given a picture in the background.

The webhook token is the only credential (no session): the engine sends it as ``Authorization: Bearer``
to ``/hooks/engine``, read from a 0600 file (never on a command line, never in a URL, where proxies and
access logs would keep it). A wrong or missing token is a plain 404.
"""

from __future__ import annotations

import hmac
import json
import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from smartlock.camera.mjpeg import jpeg_size
from smartlock.engine.files import find_unlock_frame
from smartlock.errors import BadImageError, ServiceError
from smartlock.recognition.schemas import Face
from smartlock.web.dashboard import Dashboard, DashboardDep
from smartlock.web.files import thumbnail_jpeg
from smartlock.web.storage import storage_trouble
from smartlock.web.timeline import TimelineEntry, entry_from_engine

logger = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 64 * 2**10
Box = tuple[float, float, float, float]

router = APIRouter(include_in_schema=False)


def require_engine_token(request: Request, d: Dashboard) -> None:
    """404 unless ``Authorization: Bearer`` carries the webhook token (the engine's hooks have no session)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    expected = d.webhook_token
    if scheme.lower() != "bearer" or not expected or not token or \
            not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(404, detail="not found")


@router.post("/hooks/engine")
async def engine_event(request: Request, background: BackgroundTasks, d: DashboardDep) -> JSONResponse:
    require_engine_token(request, d)
    body = await request.body()  # at most MAX_WEBHOOK_BYTES: the app's body limit refuses more (413)
    try:
        payload = json.loads(body)
    except ValueError as err:
        raise HTTPException(400, detail="the event is not JSON") from err
    entry = entry_from_engine(payload)
    if entry is None:
        return JSONResponse({"recorded": False})
    # a full disk raises here: the app answers 503 and logs it once (smartlock.web.storage)
    event_id, new = d.events.add(entry.kind, entry.person, entry.confidence, entry.when, entry.details)
    d.storage.succeeded()
    if new:
        background.add_task(attach_frame, d, event_id, entry)
    return JSONResponse({"recorded": True, "id": event_id})


def attach_frame(d: Dashboard, event_id: int, entry: TimelineEntry) -> None:
    """Give a new timeline row its picture: the engine's unlock frame, else the camera's frame of now; with
    the faces seen in it (boxes, names, confidences, liveness verdicts) for the frame viewer."""
    jpeg: bytes | None = None
    faces: list[Face] = []
    liveness: Sequence[Any] = ()
    try:
        if entry.kind == "unlock" and d.log_path is not None:
            folder = entry.details.get("frame_dir")
            saved = find_unlock_frame(d.log_path, entry.when, folder if isinstance(folder, str) else None)
            if saved is not None:
                jpeg = saved.frame.read_bytes()
                faces, liveness = saved.faces, saved.liveness
        if jpeg is None:
            latest = d.live.latest()
            jpeg, faces = latest.jpeg, latest.faces
        if not jpeg:
            return
        box = box_for(faces, entry.person)
        d.events.attach_images(event_id, thumbnail_jpeg(jpeg, 240, crop=box), thumbnail_jpeg(jpeg, 960),
                               faces_document(jpeg, faces, liveness))
    except (OSError, sqlite3.Error) as err:
        if storage_trouble(err):
            d.storage.failed(f"picture of event {event_id}", err)
        else:
            logger.info("no picture for event %d: %s", event_id, err)
    except (ServiceError, BadImageError) as err:
        logger.info("no picture for event %d: %s", event_id, err)


def faces_document(jpeg: bytes, faces: Sequence[Face], liveness: Sequence[Any] = ()) -> dict[str, Any]:
    """What the frame viewer draws: the frame's size and each face's label, confidence and box (in the
    frame's pixels, as the engine saved them), with ``liveness`` only for the faces that have a verdict."""
    width, height = jpeg_size(jpeg) or (0, 0)
    verdicts = list(liveness) + [None] * max(0, len(faces) - len(liveness))
    marks = []
    for face, verdict in zip(faces, verdicts, strict=False):
        mark: dict[str, Any] = {"label": face.label, "confidence": face.confidence,
                                "box": face.bounding_box.model_dump()}
        if verdict is not None:
            mark["liveness"] = verdict
        marks.append(mark)
    return {"width": width, "height": height, "faces": marks}


def box_for(faces: list[Face], person: str | None) -> Box | None:
    """The box of ``person``'s face when it is among ``faces``, else of the largest face; None without any."""
    if not faces:
        return None
    named = [face.box for face in faces if person and face.label == person]
    if named:
        return named[0]
    return max((face.box for face in faces), key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
