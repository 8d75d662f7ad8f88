"""POST /face-recognition: the seed's contract, faces of one image matched against the gallery."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile

from smartlock.recognition.routes.state import ApiState, State
from smartlock.recognition.schemas import Recognition, error_responses

router = APIRouter()


def _recognize(state: ApiState, data: bytes) -> list[Any]:
    with state.metrics.inference.time():  # inside the worker thread: queueing time is not counted
        return state.recognizer.recognize_bytes(data)


@router.post(
    "/face-recognition",
    response_model=Recognition,
    responses=error_responses(400, 403, 413, 422, 503),
    summary="Recognise the faces in an image",
)
async def face_recognition(
    state: State,
    image: Annotated[UploadFile, File(description="JPEG, PNG, WebP, BMP, TIFF or GIF")],
    include_predictions: Annotated[
        bool | None, Form(description="Also list every enrolled person's confidence per face.")
    ] = None,
    include_predictions_query: Annotated[
        bool | None, Query(alias="include_predictions", description="Same as the form field.")
    ] = None,
) -> Recognition:
    data = await state.read_upload(image)
    include = bool(include_predictions or include_predictions_query)
    faces = await state.inferring(_recognize, state, data)
    state.metrics.faces.observe(len(faces))
    return Recognition(faces=[face.to_face(include_predictions=include) for face in faces])
