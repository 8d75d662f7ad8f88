"""The gallery while the service runs: list, enroll, remove people and photos, read enrolled face crops."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Path, UploadFile
from fastapi.responses import Response
from starlette.convertors import PathConvertor, register_url_convertor

from smartlock.errors import NotEnrolled
from smartlock.recognition.recognizer import validate_name
from smartlock.recognition.routes.state import State
from smartlock.recognition.schemas import (
    EnrolledImage,
    Enrollment,
    Message,
    People,
    Person,
    error_responses,
)

logger = logging.getLogger(__name__)


class _PersonPrefixConvertor(PathConvertor):
    """Like ``{x:path}`` (a name with '/' still reaches the handler, which refuses it with a 400 rather
    than the router answering 404), and also matches newlines, which ``.*`` would not."""

    regex = r"[\s\S]*"


class _PersonConvertor(_PersonPrefixConvertor):
    """The same, except a path shaped like an image route (".../images", ".../images/<id>"): a wrong
    method there gets 405 from those routes, not a 400 for the name "x/images" from /people/{name}."""

    regex = r"(?![\s\S]*/images(?:/[^/]*)?$)[\s\S]*"


register_url_convertor("person", _PersonConvertor())
register_url_convertor("person_prefix", _PersonPrefixConvertor())

PersonName = Annotated[
    str, Path(min_length=1, description="The person's name (no '/', '..' or control characters).")
]


def _person_name(name: PersonName) -> str:
    """Every route naming a person refuses a name that could never be enrolled with a 400 (GalleryError),
    whether it would add, read or remove: '/', '..' and control characters are input errors, not
    unknown people."""
    return validate_name(name)


ValidName = Annotated[str, Depends(_person_name)]

router = APIRouter()


def person(name: str, images: Sequence[EnrolledImage]) -> Person:
    return Person(name=name, image_count=len(images), images=list(images))


@router.get("/people", response_model=People)
async def list_people(state: State) -> People:
    people = await state.in_thread(state.recognizer.people)
    return People(people=[person(name, images) for name, images in people.items()])


# The image routes are declared before the person routes, and `{name:person}` never matches a path
# shaped like theirs ("alice/images/<id>"): see _PersonConvertor.
@router.post(
    "/people/{name:person_prefix}/images",
    response_model=Enrollment,
    responses=error_responses(400, 403, 413, 422, 503),
    summary="Enroll photos of a person (new or existing)",
)
async def enroll(
    state: State,
    name: ValidName,
    images: Annotated[list[UploadFile], File(description="One or more photos, one face each.")],
    multiple_faces: Annotated[
        Literal["refuse", "largest"],
        Form(description="A photo with several faces: refuse it, or enroll the largest face."),
    ] = "refuse",
) -> Enrollment:
    files = [(upload.filename or f"image-{i}", await state.read_upload(upload))
             for i, upload in enumerate(images, 1)]
    outcomes = await state.changing(state.recognizer.enroll, name, files, multiple_faces)
    added = sum(o.enrolled for o in outcomes)
    logger.info("enrolled %d of %d photos of %r", added, len(outcomes), name)
    return Enrollment(name=name, enrolled=added, refused=len(outcomes) - added, outcomes=outcomes)


@router.delete(
    "/people/{name:person_prefix}/images/{image_id}",
    response_model=Message,
    responses=error_responses(400, 403, 404, 422, 503),
    summary="Remove one photo of a person",
)
async def remove_image(state: State, name: ValidName, image_id: str) -> Message:
    await state.changing(state.recognizer.remove_image, name, image_id)
    logger.info("removed image %s of %r", image_id, name)
    return Message(message=f"removed image {image_id} of {name}")


@router.get(
    "/people/{name:person_prefix}/images/{image_id}",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "JPEG face crop"},
        **error_responses(400, 404, 422),
    },
    summary="The face crop kept when a photo was enrolled",
)
async def image_crop(state: State, name: ValidName, image_id: str) -> Response:
    crop = await state.in_thread(state.recognizer.image_crop, name, image_id)
    if crop is None:
        raise NotEnrolled(f"no face crop stored for image {image_id} of {name!r}")
    return Response(crop, media_type="image/jpeg")


@router.get(
    "/people/{name:person}",
    response_model=Person,
    responses=error_responses(400, 404, 422),
    summary="One person's photos",
)
async def get_person(state: State, name: ValidName) -> Person:
    people = await state.in_thread(state.recognizer.people)
    if name not in people:
        raise NotEnrolled(f"{name!r} is not enrolled")
    return person(name, people[name])


@router.delete(
    "/people/{name:person}",
    response_model=Message,
    responses=error_responses(400, 403, 404, 422, 503),

    summary="Remove a person and all their photos",
)
async def remove_person(state: State, name: ValidName) -> Message:
    await state.changing(state.recognizer.remove_person, name)
    logger.info("removed %r", name)
    return Message(message=f"removed {name}")
