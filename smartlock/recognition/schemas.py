"""The Face Recognition API's shapes, one pydantic model each: the server answers with them, the client
parses into them, and the engine and the dashboard read them (the documentation in /openapi.json and
what the fuzzer checks answers against)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from smartlock.errors import ServiceError
from smartlock.service.health import Health as ServiceHealth

API_KEY_HEADER = "X-API-Key"  # the header carrying the key (every service has one unless --no-auth)


class Message(BaseModel):
    message: str = Field(description="What went wrong (or what was done), for a human.")
    detail: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field validation errors (422 only)."
    )


class Prediction(BaseModel):
    label: str = Field(description="An enrolled person's name ('unknown' when nobody is enrolled).")
    confidence: float = Field(
        ge=0.0, le=1.0, strict=True, description="Calibrated probability that the face is them."
    )


class BoundingBox(BaseModel):
    left: float = Field(allow_inf_nan=False)
    top: float = Field(allow_inf_nan=False)
    right: float = Field(allow_inf_nan=False)
    bottom: float = Field(allow_inf_nan=False)


class Face(BaseModel):
    top_prediction: Prediction
    bounding_box: BoundingBox = Field(description="In the posted image's pixels.")
    all_predictions: list[Prediction] | None = Field(
        default=None,
        description="Every enrolled person, best first, when include_predictions is true; else null.",
    )
    # In-process only (the engine's face tracks): never part of an answer, never read from one.
    embedding: list[float] | None = Field(default=None, exclude=True, repr=False)

    @property
    def label(self) -> str:
        return self.top_prediction.label

    @property
    def confidence(self) -> float:
        return self.top_prediction.confidence

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom) in the posted image's pixels."""
        b = self.bounding_box
        return (b.left, b.top, b.right, b.bottom)


_FACES = TypeAdapter(list[Face])


def parse_faces(payload: object, keep_embeddings: bool = False) -> list[Face]:
    """The ``faces`` list of an API answer; ServiceError for anything malformed (a bad answer never
    unlocks: a confidence outside [0, 1], NaN, a missing label or box are all refused). ``keep_embeddings``
    only for faces this process computed (in-process recognition): an answer never carries embeddings, and
    whatever a server sends there is not believed."""
    try:
        faces = _FACES.validate_python(payload)
    except ValidationError as err:
        raise ServiceError(f"face recognition answer: malformed faces: {err.errors()[0]['msg']}") from err
    if keep_embeddings:
        return faces
    return [face.model_copy(update={"embedding": None}) if face.embedding is not None else face
            for face in faces]


class Recognition(BaseModel):
    faces: list[Face] = Field(description="Faces found, largest first; empty when there is none.")


class EnrolledImage(BaseModel):
    image_id: str
    source: str = Field(description="File name the photo was uploaded or trained with.")


class Person(BaseModel):
    name: str
    image_count: int
    images: list[EnrolledImage]


class People(BaseModel):
    people: list[Person]


class EnrollOutcome(BaseModel):
    filename: str
    enrolled: bool
    image_id: str | None = Field(description="Set when enrolled: use it to remove this photo.")
    reason: str | None = Field(
        description="Why the photo was refused (no face, several faces, not an image)."
    )


class Enrollment(BaseModel):
    name: str
    enrolled: int = Field(description="Photos added to the gallery by this request.")
    refused: int
    outcomes: list[EnrollOutcome] = Field(description="One per uploaded photo, in upload order.")


class Health(ServiceHealth):
    """The shared /health answer with the recognizer's facts (no key needed: nothing secret here)."""

    part: str = "recognition"
    backend: str
    people: int
    images: int
    model_hashes: dict[str, str]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries documenting these error statuses (each answers a Message)."""
    text = {
        400: "Unusable input (not an image, bad name, ...)",
        401: "Missing or wrong X-API-Key",
        403: "Sent from a web page of another origin (the Origin header)",
        404: "Unknown person or image",
        413: "Upload too large",
        422: "Missing or invalid field",
        503: "The model cannot be used or the gallery cannot be saved",
    }
    return {code: {"model": Message, "description": text[code]} for code in codes}
