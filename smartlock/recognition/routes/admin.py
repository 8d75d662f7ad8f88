"""Running the service: calibration data and Prometheus metrics (behind the key), /health (open)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from smartlock.recognition.routes.state import State
from smartlock.recognition.schemas import Health

router = APIRouter()
# /health needs no key (the supervisor and load balancers poll it): a router of its own.
open_router = APIRouter()


def plain(value: Any) -> Any:
    """JSON-safe copy of the calibration dict: numpy scalars/arrays to Python, NaN/inf to None."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if hasattr(value, "tolist"):
        return plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@router.get("/calibration", summary="Score calibration data")
async def calibration(state: State) -> dict[str, Any]:
    return plain(await state.in_thread(state.recognizer.calibration))


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    summary="Prometheus metrics",
)
async def prometheus_metrics(state: State) -> Response:
    body, content_type = await state.in_thread(state.metrics.render)
    return Response(body, media_type=content_type)


@open_router.get(
    "/health", response_model=Health, summary="Liveness, backend and gallery size (no key needed)"
)
async def health(state: State) -> Health:
    people = await state.in_thread(state.recognizer.people)
    return Health(
        backend=state.recognizer.backend_name,
        people=len(people),
        images=sum(len(images) for images in people.values()),
        model_hashes=state.model_hashes,
    )


