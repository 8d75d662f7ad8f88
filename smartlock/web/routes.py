"""The dashboard's data API (all behind a session): camera, live faces, door, timeline, people, calibration.

Blocking calls to the other services are plain ``def`` handlers, which FastAPI runs in its thread pool.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from smartlock import __version__
from smartlock.errors import BadImageError, ConfigError, ServiceError, SmartlockError
from smartlock.web.app import Dashboard
from smartlock.web.files import thumbnail_jpeg
from smartlock.web.timeline import TimelineEntry, entry_from_engine, find_unlock_frame

log = logging.getLogger(__name__)

MAX_PHOTOS = 20
MAX_PHOTO_BYTES = 20 * 2**20
MAX_WEBHOOK_BYTES = 64 * 2**10
KINDS = ("unlock", "stranger", "sighting", "lock")


def _jpeg(path) -> FileResponse:
    return FileResponse(path, media_type="image/jpeg", headers={"cache-control": "private, max-age=3600"})


def _missing(what: str) -> HTTPException:
    return HTTPException(404, detail=f"{what} not found")


def _json_body(body: Any, *fields: str) -> list[Any]:
    if not isinstance(body, dict):
        raise ConfigError("expected a JSON object")
    return [body.get(name) for name in fields]


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("give the person's name")
    return value.strip()


def build_router(d: Dashboard) -> APIRouter:
    router = APIRouter(prefix="/api")

    # -- system ------------------------------------------------------------------------------------

    @router.get("/system")
    def system() -> dict[str, Any]:
        return {"version": __version__, "children": d.system_status(),
                "settings": d.settings.current.model_dump()}

    # -- camera and live view ----------------------------------------------------------------------

    @router.get("/camera/stream.mjpg")
    async def camera_stream() -> StreamingResponse:
        content_type, body = await d.camera.stream()
        return StreamingResponse(body, media_type=content_type, headers={"cache-control": "no-store"})

    @router.get("/camera/snapshot.jpg")
    def camera_snapshot() -> Response:
        return Response(d.camera.snapshot(), media_type="image/jpeg")

    @router.get("/camera/health")
    def camera_health() -> dict[str, Any]:
        return d.camera.health()

    @router.get("/live/faces")
    def live_faces() -> dict[str, Any]:
        assert d.live is not None
        result = {k: v for k, v in d.live.latest().items() if k != "jpeg"}
        return {**result, "threshold": d.settings.current.threshold}

    # -- door ----------------------------------------------------------------------------------------

    @router.get("/door/status")
    def door_status() -> dict[str, Any]:
        return d.door.status()

    @router.post("/door/lock")
    def door_lock() -> dict[str, Any]:
        d.door.lock()
        d.events.add("lock", details={"by": "dashboard"})
        log.info("door locked from the dashboard")
        return d.door.status()

    @router.get("/door/events")
    def door_events(limit: int = Query(50, ge=1, le=200), before: int | None = Query(None, ge=1)) -> dict:
        return d.door.events(limit=limit, before=before)

    # -- timeline ------------------------------------------------------------------------------------

    @router.get("/events")
    def list_events(
        person: str | None = None,
        kind: str | None = None,
        before: int | None = Query(None, ge=1),
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

    @router.get("/events/{event_id}/thumb.jpg")
    def event_thumb(event_id: int) -> FileResponse:
        path = d.events.image_path(event_id)
        if path is None:
            raise _missing("thumbnail")
        return _jpeg(path)

    @router.get("/events/{event_id}/frame.jpg")
    def event_frame(event_id: int) -> FileResponse:
        path = d.events.image_path(event_id, frame=True)
        if path is None:
            raise _missing("frame")
        return _jpeg(path)

    # -- people --------------------------------------------------------------------------------------

    @router.get("/people")
    def people() -> dict[str, Any]:
        unlocks = d.events.counts("unlock")
        listed = []
        for person in d.recognition.people():
            name = person.get("name")
            images = person.get("images") or []
            listed.append({
                "name": name,
                "image_count": person.get("image_count", len(images)),
                "images": [{"image_id": i.get("image_id"), "source": i.get("source")} for i in images],
                "unlocks": unlocks.get(name, 0),
                "last_unlock": d.events.last_time("unlock", name),
            })
        return {"people": listed}

    @router.get("/people/photo.jpg")
    def person_photo(name: str, image_id: str) -> Response:
        crop = getattr(d.recognition, "image_crop", None)
        if callable(crop):
            try:
                data = crop(name, image_id)
            except SmartlockError:
                data = None
            if data:
                return Response(data, media_type="image/jpeg",
                                headers={"cache-control": "private, max-age=3600"})
        if d.model_dir is not None and re.fullmatch(r"[0-9a-f]{8,64}", image_id):
            path = d.model_dir / "faces" / f"{image_id}.jpg"  # the crop the recognizer kept at enrollment
            if path.is_file():
                return _jpeg(path)
        raise _missing("photo")

    @router.post("/people/enroll")
    async def enroll_upload(request: Request) -> dict[str, Any]:
        form = await request.form(max_files=MAX_PHOTOS, max_fields=10)
        name = _name(form.get("name"))
        files = []
        for upload in form.getlist("photos"):
            if isinstance(upload, str):
                continue
            data = await upload.read(MAX_PHOTO_BYTES + 1)
            if len(data) > MAX_PHOTO_BYTES:
                raise HTTPException(413, detail=f"{upload.filename}: photos are limited to 20 MB")
            files.append((upload.filename or "photo.jpg", data))
        await form.close()
        if not files:
            raise ConfigError("choose at least one photo")
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(_enroll, d, name, files)

    @router.post("/people/enroll-captures")
    def enroll_captures(body: dict[str, Any]) -> dict[str, Any]:
        name, ids = _json_body(body, "name", "ids")
        name = _name(name)
        if not isinstance(ids, list) or not ids or len(ids) > MAX_PHOTOS:
            raise ConfigError(f"pick 1 to {MAX_PHOTOS} captured frames")
        files = []
        for capture_id in ids:
            path = d.captures.path(str(capture_id))
            if path is None:
                raise _missing(f"captured frame {capture_id}")
            files.append((f"capture-{capture_id}.jpg", path.read_bytes()))
        result = _enroll(d, name, files)
        for capture_id, outcome in zip(ids, result["outcomes"], strict=False):
            if outcome.get("enrolled"):
                d.captures.remove(str(capture_id))
        return result

    @router.post("/people/enroll-collected")
    def enroll_collected(body: dict[str, Any]) -> dict[str, Any]:
        name, frames = _json_body(body, "name", "frames")
        name = _name(name)
        if d.collected is None:
            raise _missing("collected frames folder")
        if not isinstance(frames, list) or not frames or len(frames) > MAX_PHOTOS:
            raise ConfigError(f"pick 1 to {MAX_PHOTOS} collected frames")
        paths = []
        for frame in frames:
            path = d.collected.path(str(frame))
            if path is None:
                raise _missing(f"collected frame {frame}")
            paths.append(path)
        result = _enroll(d, name, [(p.name, p.read_bytes()) for p in paths])
        # a frame with several people in it is refused; its saved face crop names the one meant
        retry = [
            (i, d.collected.crop_path(paths[i].name))
            for i, outcome in enumerate(result["outcomes"])
            if not outcome.get("enrolled") and "several faces" in str(outcome.get("reason"))
        ]
        retry = [(i, crop) for i, crop in retry if crop is not None]
        if retry:
            again = _enroll(d, name, [(crop.name, crop.read_bytes()) for _, crop in retry])
            for (i, _), outcome in zip(retry, again["outcomes"], strict=False):
                if outcome.get("enrolled"):
                    result["outcomes"][i] = {**outcome, "filename": paths[i].name,
                                             "reason": "several faces: enrolled the collector's face crop"}
            result["enrolled"] = sum(1 for o in result["outcomes"] if o.get("enrolled"))
            result["refused"] = len(result["outcomes"]) - result["enrolled"]
        return result

    @router.delete("/people")
    def remove_person(name: str) -> dict[str, Any]:
        d.recognition.remove_person(name)
        log.info("removed %r from the gallery", name)
        return {"message": f"removed {name}"}

    @router.delete("/people/photo")
    def remove_photo(name: str, image_id: str) -> dict[str, Any]:
        d.recognition.remove_image(name, image_id)
        return {"message": f"removed photo {image_id} of {name}"}

    # -- frames for enrollment -------------------------------------------------------------------------

    @router.post("/captures")
    def capture() -> dict[str, Any]:
        capture_id = d.captures.add(d.camera.snapshot())
        return {"id": capture_id, "image": f"/api/captures/{capture_id}.jpg"}

    @router.get("/captures")
    def captures() -> dict[str, Any]:
        return {"captures": [{"id": c, "image": f"/api/captures/{c}.jpg"} for c in d.captures.list()]}

    @router.get("/captures/{capture_id}.jpg")
    def capture_image(capture_id: str) -> FileResponse:
        path = d.captures.path(capture_id)
        if path is None:
            raise _missing("captured frame")
        return _jpeg(path)

    @router.delete("/captures/{capture_id}")
    def drop_capture(capture_id: str) -> dict[str, Any]:
        d.captures.remove(capture_id)
        return {"message": "removed"}

    @router.get("/collected")
    def collected(limit: int = Query(60, ge=1, le=500)) -> dict[str, Any]:
        frames = d.collected.list(limit) if d.collected is not None else []
        return {"frames": [frame.to_api() for frame in frames],
                "folder": str(d.collected.folder) if d.collected is not None else None}

    @router.get("/collected/{name}")
    def collected_image(name: str) -> FileResponse:
        path = d.collected.path(name) if d.collected is not None else None
        if path is None:
            raise _missing("collected frame")
        return _jpeg(path)

    # -- calibration and settings ----------------------------------------------------------------------

    @router.get("/calibration")
    def calibration(threshold: float | None = Query(None, gt=0, lt=1)) -> dict[str, Any]:
        data = d.recognition.calibration()
        current = d.settings.current.threshold
        chosen = threshold if threshold is not None else current
        return {"calibration": data, "threshold": current,
                "estimate": estimate_false_accept(data, chosen)}

    @router.put("/settings")
    def update_settings(body: dict[str, Any]) -> dict[str, Any]:
        (threshold,) = _json_body(body, "threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ConfigError("threshold must be a number between 0 and 1")
        settings = d.settings.update(threshold=float(threshold))
        return {"settings": settings.model_dump(),
                "message": f"threshold {settings.threshold:.2f} saved; the engine uses it from now on"}

    return router


def _enroll(d: Dashboard, name: str, files: list[tuple[str, bytes]]) -> dict[str, Any]:
    result = d.recognition.enroll(name, files)
    outcomes = [
        {"filename": o.get("filename"), "enrolled": bool(o.get("enrolled")), "image_id": o.get("image_id"),
         "reason": o.get("reason")}
        for o in result.get("outcomes", [])
    ]
    enrolled = sum(1 for o in outcomes if o["enrolled"])
    log.info("enrolled %d of %d photo(s) of %r", enrolled, len(outcomes), name)
    return {"name": name, "enrolled": enrolled, "refused": len(outcomes) - enrolled, "outcomes": outcomes}


def estimate_false_accept(calibration: dict, threshold: float) -> dict[str, Any] | None:
    """The stranger false-accept rate at ``threshold``: the recognizer's leave-one-out figure when it
    measured that very threshold, else an estimate from its impostor scores (per-comparison rate p at the
    score a lone match needs, over N people: 1 - (1 - p)^N)."""
    try:
        people = int(calibration.get("people") or 0)
        slope = float(calibration["slope"])
        intercept = float(calibration["intercept"])
        prior_odds = float(calibration.get("prior_odds", 1.0))
    except (KeyError, TypeError, ValueError):
        return None
    if people < 1 or slope == 0 or not 0 < threshold < 1:
        return None
    needed = math.log(threshold / (1 - threshold)) - math.log(prior_odds / people)
    score = (needed - intercept) / slope
    measured = calibration.get("false_accept_at") or {}
    for key, value in measured.items():
        try:
            if abs(float(key) - threshold) < 1e-9 and value is not None:
                return {"threshold": threshold, "score": score, "far": float(value),
                        "method": "leave-one-out",
                        "trials": calibration.get("stranger_trials") or calibration.get("images")}
        except (TypeError, ValueError):
            continue
    impostors = [s for s in calibration.get("impostor_scores") or [] if isinstance(s, int | float)]
    if not impostors:
        return {"threshold": threshold, "score": score, "far": None, "method": "no impostor scores yet",
                "trials": 0}
    p = sum(1 for s in impostors if s >= score) / len(impostors)
    return {"threshold": threshold, "score": score, "far": 1 - (1 - p) ** people, "method": "estimate",
            "trials": len(impostors)}


def build_webhook(d: Dashboard) -> APIRouter:
    """The engine's events arrive here; the secret in the URL is the only credential (no session)."""
    router = APIRouter()

    @router.post("/hooks/engine/{token}", include_in_schema=False)
    async def engine_event(token: str, request: Request, background: BackgroundTasks) -> JSONResponse:
        expected = d.webhook_token
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            raise HTTPException(404, detail="not found")
        body = await request.body()
        if len(body) > MAX_WEBHOOK_BYTES:
            raise HTTPException(413, detail="event too large")
        try:
            payload = json.loads(body)
        except ValueError as err:
            raise HTTPException(400, detail="the event is not JSON") from err
        entry = entry_from_engine(payload)
        if entry is None:
            return JSONResponse({"recorded": False})
        event_id, new = d.events.add(entry.kind, entry.person, entry.confidence, entry.when, entry.details)
        if new:
            background.add_task(attach_frame, d, event_id, entry)
        return JSONResponse({"recorded": True, "id": event_id})

    return router


def attach_frame(d: Dashboard, event_id: int, entry: TimelineEntry) -> None:
    """Give a new timeline row its picture: the engine's unlock frame, else the camera's frame of now."""
    jpeg: bytes | None = None
    faces: list[dict] = []
    try:
        if entry.kind == "unlock" and d.log_path is not None:
            frame = find_unlock_frame(d.log_path, entry.when, entry.details.get("frame_dir"))
            if frame is not None:
                jpeg = frame.read_bytes()
                faces = _saved_faces(frame.parent / "faces.json")
        if jpeg is None:
            assert d.live is not None
            latest = d.live.latest()
            jpeg = latest.get("jpeg")
            faces = [{"label": f["label"], "box": f["box"]} for f in latest.get("faces", [])]
        if not jpeg:
            return
        box = _box_for(faces, entry.person)
        d.events.attach_images(event_id, thumbnail_jpeg(jpeg, 240, crop=box), thumbnail_jpeg(jpeg, 960))
    except (ServiceError, BadImageError, OSError) as err:
        log.info("no picture for event %d: %s", event_id, err)


def _saved_faces(path) -> list[dict]:
    try:
        faces = json.loads(path.read_text(encoding="utf-8")).get("faces", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [
        {"label": f.get("top_prediction", {}).get("label"), "box": f.get("bounding_box")}
        for f in faces if isinstance(f, dict)
    ]


def _box_for(faces: list[dict], person: str | None) -> tuple[float, float, float, float] | None:
    def as_box(face: dict) -> tuple[float, float, float, float] | None:
        box = face.get("box")
        try:
            return (float(box["left"]), float(box["top"]), float(box["right"]), float(box["bottom"]))
        except (TypeError, KeyError, ValueError):
            return None

    boxes = [(face, as_box(face)) for face in faces]
    boxes = [(face, box) for face, box in boxes if box is not None]
    if not boxes:
        return None
    named = [box for face, box in boxes if person and face.get("label") == person]
    if named:
        return named[0]
    return max((box for _, box in boxes), key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
