"""The app factory of every HTTP part: one error shape ({"message": ...}), body limits, offline /docs.

Errors are converted once, here: a SmartlockError becomes the status ``status_for`` gives it, a
validation error 422 with one readable line plus per-field details, an HTTPException its own status
(405 with every allowed method), anything else a 500 that names the type and nothing more. The message
sent is also left in the request scope under ``ERROR_MESSAGE_KEY`` so an audit can record the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Lifespan, Scope

from smartlock import __version__
from smartlock.docs_ui import mount_api_docs
from smartlock.errors import (
    AuthError,
    BadImageError,
    CameraError,
    ConfigError,
    DependencyMissing,
    GalleryError,
    ModelError,
    NotEnrolled,
    RelayError,
    ServiceError,
    SmartlockError,
)
from smartlock.service.limits import BodyLimitMiddleware
from smartlock.service.responses import ERROR_MESSAGE_KEY, json_message

logger = logging.getLogger(__name__)

PROBED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def status_for(err: SmartlockError) -> int:
    """The HTTP status a domain error answers with."""
    if isinstance(err, NotEnrolled):
        return 404
    if isinstance(err, AuthError):
        return 401
    if isinstance(err, BadImageError | GalleryError | ConfigError):
        return 400
    if isinstance(err, ModelError | DependencyMissing | CameraError | RelayError | ServiceError):
        return 503
    return 500


def validation_details(err: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    """One readable line ("body.name: Field required; ...") and the per-field list."""
    details = [
        {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", "")),
         "type": str(error.get("type", ""))}
        for error in err.errors()
    ]
    summary = "; ".join(f"{'.'.join(d['loc'][1:] or d['loc'])}: {d['msg']}" for d in details)
    return summary or "invalid request", details


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method the path of a 405 answers to. Starlette names only the first route that matched,
    but e.g. GET and DELETE /people/{name} are two routes with one template, so each method is probed."""
    allowed = set()
    for method in PROBED_METHODS:
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in app.router.routes):
            allowed.add(method)
    return sorted(allowed)


def install_error_handlers(
    app: FastAPI,
    *,
    status_of: Callable[[SmartlockError], int] = status_for,
    message_of: Callable[[SmartlockError], str] = lambda err: str(err) or type(err).__name__,
) -> None:
    """Register the shared handlers on ``app`` (create_api_app does it; exposed for sub-apps)."""

    def answer(request: Request, status: int, message: str, **kwargs: Any) -> JSONResponse:
        request.scope[ERROR_MESSAGE_KEY] = message
        return json_message(status, message, **kwargs)

    @app.exception_handler(SmartlockError)
    async def domain_error(request: Request, err: SmartlockError) -> JSONResponse:
        status = status_of(err)
        if status >= 500:
            logger.warning("%s %s: %s", request.method, request.url.path, err)
        headers = {"Retry-After": "1"} if status == 503 else None
        return answer(request, status, message_of(err), headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        headers = dict(err.headers or {})
        if err.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(app, request.scope))
        return answer(request, err.status_code, str(err.detail), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        summary, details = validation_details(err)
        return answer(request, 422, summary, detail=details)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, err: Exception) -> JSONResponse:
        logger.error("%s %s: unexpected error", request.method, request.url.path, exc_info=err)
        return answer(request, 500, f"internal error ({type(err).__name__}); the server log has the details")


def create_api_app(
    title: str,
    description: str,
    *,
    max_body_bytes: int | None,
    body_limit_for: Callable[[str], int] | None = None,
    lifespan: Lifespan[Any] | None = None,
    status_of: Callable[[SmartlockError], int] = status_for,
    message_of: Callable[[SmartlockError], str] | None = None,
    docs: bool = True,
    **fastapi_kwargs: Any,
) -> FastAPI:
    """A FastAPI app with the shared error handlers, a body limit enforced before parsing (413) and,
    with ``docs``, Swagger UI and ReDoc served offline. ``max_body_bytes=None`` means no limit (a part
    with no request bodies); ``body_limit_for(path)`` overrides it per path."""
    app = FastAPI(
        title=title, description=description, version=__version__, lifespan=lifespan,
        docs_url=None, redoc_url=None, **fastapi_kwargs,
    )
    if docs:
        mount_api_docs(app)
    handlers: dict[str, Any] = {"status_of": status_of}
    if message_of is not None:
        handlers["message_of"] = message_of
    install_error_handlers(app, **handlers)
    if max_body_bytes is not None or body_limit_for is not None:
        limit = max_body_bytes if max_body_bytes is not None else 0
        app.add_middleware(BodyLimitMiddleware, limit=limit, limit_for=body_limit_for)
    return app
