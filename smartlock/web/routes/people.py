"""The people API: who is enrolled, their photos, enrollment (uploads, captured or collected frames).

Reading is for every account; enrolling and removing need an admin's and land in the audit."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from smartlock.errors import ConfigError, ServiceRefused
from smartlock.web.accounts import Account
from smartlock.web.audit import record_action
from smartlock.web.dashboard import Dashboard, DashboardDep
from smartlock.web.routes.common import (
    MAX_PHOTO_BYTES,
    MAX_PHOTOS,
    json_fields,
    missing,
    person_name,
)
from smartlock.web.routes.guards import AdminDep

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/people")


@router.get("")
def people(d: DashboardDep) -> dict[str, Any]:
    unlocks = d.events.counts("unlock")
    listed = []
    for person in d.recognition.people():
        listed.append({
            "name": person.name,
            "image_count": person.image_count,
            "images": [{"image_id": image.image_id, "source": image.source} for image in person.images],
            "unlocks": unlocks.get(person.name, 0),
            "last_unlock": d.events.last_time("unlock", person.name),
        })
    return {"people": listed}


@router.get("/photo.jpg")
def person_photo(name: str, image_id: str, d: DashboardDep) -> Response:
    """The face crop the recognizer kept at enrollment (asked of it, never read from its files)."""
    try:
        data = d.recognition.image_crop(name, image_id)
    except ServiceRefused as err:
        if err.status_code in (400, 404):
            raise missing("photo") from err
        raise
    return Response(data, media_type="image/jpeg", headers={"cache-control": "private, max-age=3600"})


@router.post("/enroll")
async def enroll_upload(request: Request, d: DashboardDep,
                        admin: AdminDep) -> dict[str, Any]:
    form = await request.form(max_files=MAX_PHOTOS, max_fields=10)
    name = person_name(form.get("name"))
    files = []
    for upload in form.getlist("photos"):
        if not isinstance(upload, UploadFile):
            continue
        data = await upload.read(MAX_PHOTO_BYTES + 1)
        if len(data) > MAX_PHOTO_BYTES:
            raise HTTPException(413, detail=f"{upload.filename}: photos are limited to 20 MB")
        files.append((upload.filename or "photo.jpg", data))
    await form.close()
    if not files:
        raise ConfigError("choose at least one photo")
    result = await run_in_threadpool(enroll, d, name, files)
    await run_in_threadpool(audit_enroll, d, admin, "upload", result)
    return result


@router.post("/enroll-captures")
def enroll_captures(body: dict[str, Any], d: DashboardDep,
                    admin: AdminDep) -> dict[str, Any]:
    name, ids = json_fields(body, "name", "ids")
    name = person_name(name)
    if not isinstance(ids, list) or not ids or len(ids) > MAX_PHOTOS:
        raise ConfigError(f"pick 1 to {MAX_PHOTOS} captured frames")
    files = []
    for capture_id in ids:
        path = d.captures.path(str(capture_id))
        if path is None:
            raise missing(f"captured frame {capture_id}")
        files.append((f"capture-{capture_id}.jpg", path.read_bytes()))
    result = enroll(d, name, files)
    for capture_id, outcome in zip(ids, result["outcomes"], strict=False):
        if outcome.get("enrolled"):
            d.captures.remove(str(capture_id))
    audit_enroll(d, admin, "captured frames", result)
    return result


@router.post("/enroll-collected")
def enroll_collected(body: dict[str, Any], d: DashboardDep,
                     admin: AdminDep) -> dict[str, Any]:
    name, frames = json_fields(body, "name", "frames")
    name = person_name(name)
    collected = d.collected
    if collected is None:
        raise missing("collected frames folder")
    if not isinstance(frames, list) or not frames or len(frames) > MAX_PHOTOS:
        raise ConfigError(f"pick 1 to {MAX_PHOTOS} collected frames")
    paths: list[Path] = []
    for frame in frames:
        path = collected.path(str(frame))
        if path is None:
            raise missing(f"collected frame {frame}")
        paths.append(path)
    result = enroll(d, name, [(p.name, p.read_bytes()) for p in paths])
    # a frame with several people in it is refused; its saved face crop names the one meant
    retry = [
        (i, crop)
        for i, outcome in enumerate(result["outcomes"])
        if not outcome.get("enrolled") and "several faces" in str(outcome.get("reason"))
        and (crop := collected.crop_path(paths[i].name)) is not None
    ]
    if retry:
        again = enroll(d, name, [(crop.name, crop.read_bytes()) for _, crop in retry])
        for (i, _), outcome in zip(retry, again["outcomes"], strict=False):
            if outcome.get("enrolled"):
                result["outcomes"][i] = {**outcome, "filename": paths[i].name,
                                         "reason": "several faces: enrolled the collector's face crop"}
        result["enrolled"] = sum(1 for o in result["outcomes"] if o.get("enrolled"))
        result["refused"] = len(result["outcomes"]) - result["enrolled"]
    audit_enroll(d, admin, "collected frames", result)
    return result


@router.delete("")
def remove_person(name: str, d: DashboardDep, admin: AdminDep) -> dict[str, Any]:
    d.recognition.remove_person(name)
    logger.info("%s removed %r from the gallery", admin.name, name)
    record_action(d, admin.name, "remove-person", {"person": name})
    return {"message": f"removed {name}"}


@router.delete("/photo")
def remove_photo(name: str, image_id: str, d: DashboardDep,
                 admin: AdminDep) -> dict[str, Any]:
    d.recognition.remove_image(name, image_id)
    logger.info("%s removed photo %s of %r", admin.name, image_id, name)
    record_action(d, admin.name, "remove-photo", {"person": name, "image_id": image_id})
    return {"message": f"removed photo {image_id} of {name}"}


def audit_enroll(d: Dashboard, admin: Account, source: str, result: dict[str, Any]) -> None:
    """An enrollment in the audit: who, whom, from what, how many photos taken and refused."""
    record_action(d, admin.name, "enroll", {
        "person": result["name"], "source": source, "enrolled": result["enrolled"],
        "refused": result["refused"],
        "image_ids": [o["image_id"] for o in result["outcomes"] if o.get("enrolled")][:20],
    })


def enroll(d: Dashboard, name: str, files: list[tuple[str, bytes]]) -> dict[str, Any]:
    """Enroll ``files`` as ``name``; the answer the People page shows (one outcome per photo)."""
    result = d.recognition.enroll(name, files)
    outcomes = [
        {"filename": o.filename, "enrolled": o.enrolled, "image_id": o.image_id, "reason": o.reason}
        for o in result.outcomes
    ]
    enrolled = sum(1 for o in outcomes if o["enrolled"])
    logger.info("enrolled %d of %d photo(s) of %r", enrolled, len(outcomes), name)
    return {"name": name, "enrolled": enrolled, "refused": len(outcomes) - enrolled, "outcomes": outcomes}
