"""The Face Recognition API: the seed's POST /face-recognition, live enrollment, health and metrics.

``create_app`` only assembles: the service kit's app (error shape, offline /docs), the body limit, the
API key and Origin guards, metrics, and the routers of ``routes/``, whose handlers find their
collaborators in ``app.state.recognition`` (an ``ApiState``).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI

from smartlock.errors import ConfigError
from smartlock.recognition.metrics import ApiMetrics, MetricsMiddleware
from smartlock.recognition.middleware import ApiKeyMiddleware, OriginMiddleware, too_large_message
from smartlock.recognition.routes import admin, people, recognize
from smartlock.recognition.routes.state import ApiState, require_key
from smartlock.recognition.schemas import error_responses
from smartlock.service import BodyLimitMiddleware, create_api_app

if TYPE_CHECKING:
    from smartlock.recognition.recognizer import Recognizer

logger = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 20 * 2**20
# Multipart framing (boundaries, part headers, small form fields) on top of the file bytes themselves.
MULTIPART_OVERHEAD_BYTES = 64 * 2**10
DESCRIPTION = (
    "Recognise enrolled people in an image (`POST /face-recognition`, the seed's contract) and "
    "enroll or remove people while the service runs. Errors answer `{\"message\": ...}`."
)


def check_api_key(api_key: str | None) -> None:
    """ConfigError for a key HTTP headers cannot carry as given."""
    if api_key is not None and not (api_key and api_key.isascii() and api_key.isprintable()):
        raise ConfigError("the API key must be a non-empty string of printable ASCII characters")
    if api_key is not None and api_key != api_key.strip():
        raise ConfigError("the API key must not start or end with spaces (HTTP headers cannot carry them)")


def create_app(
    recognizer: Recognizer,
    api_key: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    *,
    inference_threads: int | None = None,
    metrics: ApiMetrics | None = None,
) -> FastAPI:
    """The recognition service around one loaded ``recognizer``.

    ``api_key``: when set, every endpoint but /health (and the docs) needs header X-API-Key; None serves
    an open API (the CLI does that only with ``--no-auth``). With or without it, a request that may change
    something and carries a foreign ``Origin`` gets 403.
    ``inference_threads``: recognitions running at once (default: CPU count); more queue up.
    """
    check_api_key(api_key)
    metrics = metrics or ApiMetrics()
    metrics.watch_people(lambda: len(recognizer.people()))
    app = create_api_app("smartlock Face Recognition API", DESCRIPTION, max_body_bytes=None)
    app.state.recognition = ApiState(
        recognizer=recognizer, metrics=metrics, max_upload_bytes=max_upload_bytes,
        inference_threads=inference_threads or os.cpu_count() or 1, api_key=api_key or None,
        model_hashes=dict(recognizer.model_hashes()),
    )
    # Without a key the schema must not claim one is needed (the fuzzer and clients read it).
    guarded: dict[str, Any] = (
        {"dependencies": [Depends(require_key)], "responses": error_responses(401)} if api_key else {}
    )
    for router in (recognize.router, people.router, admin.router):
        app.include_router(router, **guarded)
    app.include_router(admin.open_router)
    # The last added is the outermost: metrics see every answer; the key is checked first (a stranger
    # gets 401 whatever else is wrong), then the Origin, then the size.
    request_limit = max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    app.add_middleware(BodyLimitMiddleware, limit=request_limit,
                       message=lambda limit: too_large_message(max_upload_bytes, limit))
    app.add_middleware(OriginMiddleware)
    if api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=api_key)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
