"""Response models of the Face Recognition API: the documentation in /openapi.json and what the fuzzer
checks answers against."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Message(BaseModel):
    message: str = Field(description="What went wrong (or what was done), for a human.")
    detail: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field validation errors (422 only)."
    )


class Prediction(BaseModel):
    label: str = Field(description="An enrolled person's name ('unknown' when nobody is enrolled).")
    confidence: float = Field(ge=0.0, le=1.0, description="Calibrated probability that the face is them.")


class BoundingBox(BaseModel):
    left: float
    top: float
    right: float
    bottom: float


class Face(BaseModel):
    top_prediction: Prediction
    bounding_box: BoundingBox = Field(description="In the posted image's pixels.")
    all_predictions: list[Prediction] | None = Field(
        description="Every enrolled person, best first, when include_predictions is true; else null."
    )


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


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    backend: str
    people: int
    images: int
    model_hashes: dict[str, str]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries documenting these error statuses (each answers a Message)."""
    text = {
        400: "Unusable input (not an image, bad name, ...)",
        401: "Missing or wrong X-API-Key",
        404: "Unknown person or image",
        413: "Upload too large",
        422: "Missing or invalid field",
        503: "The model cannot be used or the gallery cannot be saved",
    }
    return {code: {"model": Message, "description": text[code]} for code in codes}
