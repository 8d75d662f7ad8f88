"""The dashboard's FastAPI app: the kit's app (error shape, body limits) with the dashboard's routers,
static files and security headers. Sign-in and CSRF rules: smartlock.web.routes.guards."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smartlock.errors import (
    BadImageError,
    ConfigError,
    DoorError,
    GalleryError,
    NotEnrolled,
    ServiceError,
    ServiceRefused,
    SmartlockError,
)
from smartlock.service import create_api_app, json_message
from smartlock.web.dashboard import Dashboard
from smartlock.web.routes import (
    accounts,
    door,
    frames,
    live,
    pages,
    people,
    signin,
    system,
    timeline,
    webhook,
)
from smartlock.web.routes import settings as settings_routes
from smartlock.web.routes.common import MAX_PHOTO_BYTES, MAX_PHOTOS
from smartlock.web.routes.guards import csrf_guard, require_admin_to_change, require_session
from smartlock.web.routes.pages import STATIC_DIR
from smartlock.web.storage import storage_trouble

logger = logging.getLogger(__name__)

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
]
SIGN_IN_BODY_BYTES = 16 * 2**10  # two passwords of MAX_PASSWORD_LENGTH (1024) characters in any script
JSON_BODY_BYTES = 64 * 2**10  # settings, lists of frame names, the engine's events
UPLOAD_BODY_BYTES = MAX_PHOTOS * MAX_PHOTO_BYTES + 2**20  # 20 photos of 20 MB, plus the form around them


def body_limit_for(path: str) -> int:
    """Each path's request-body limit, enforced before anything is parsed."""
    if path.startswith("/api/auth/"):
        return SIGN_IN_BODY_BYTES
    if path == "/api/people/enroll":
        return UPLOAD_BODY_BYTES
    if path == live.LIVE_HOOK_PATH:
        return live.LIVE_HOOK_BODY_BYTES
    return JSON_BODY_BYTES


class SecurityHeaders:
    """Adds the security headers to every response, and no-store to the API's answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope.get("path", "").startswith("/api/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    h for h in message.get("headers", []) if not api or h[0].lower() != b"cache-control"
                ]
                headers.extend(SECURITY_HEADERS)
                if api:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def status_for(err: SmartlockError) -> int:
    """The dashboard's statuses for domain errors: another part's failure is a 502 (bad gateway)."""
    if isinstance(err, ServiceRefused):
        return err.status_code if err.status_code in (400, 404, 409, 413, 422) else 502
    if isinstance(err, NotEnrolled):
        return 404
    if isinstance(err, BadImageError | GalleryError | ConfigError):
        return 400
    if isinstance(err, ServiceError | DoorError):
        return 502
    return 500


def message_of(err: SmartlockError) -> str:
    """The error's text; a part's refusal without the request it refused."""
    text = str(err) or type(err).__name__
    if isinstance(err, ServiceRefused) and err.status_code < 500:
        # "POST http://127.0.0.1:5xxxx/people/x/images: 400: bad name" -> "bad name"
        parts = text.split(": ", 2)
        return parts[2] if len(parts) == 3 else text
    return text


def create_app(
    dashboard: Dashboard, *, forwarded_allow_ips: Sequence[str] = (), openapi: bool = False
) -> FastAPI:
    """The dashboard app around ``dashboard``'s collaborators (see Dashboard).

    ``forwarded_allow_ips``: the proxies (addresses or networks) whose X-Forwarded-For and
    X-Forwarded-Proto are believed; from anyone else they are ignored, so the client is the socket's peer.
    ``openapi``: serve /openapi.json (the tests fuzz the API from it; `up` leaves it off).
    """
    app = create_api_app(
        "smartlock dashboard", "The web dashboard of `smartlock up`.",
        max_body_bytes=JSON_BODY_BYTES, body_limit_for=body_limit_for,
        status_of=status_for, message_of=message_of, docs=False,
        openapi_url="/openapi.json" if openapi else None,
    )
    app.state.dashboard = dashboard
    install_storage_handlers(app, dashboard)
    app.add_middleware(SecurityHeaders)
    if forwarded_allow_ips:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(forwarded_allow_ips))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(pages.router)
    app.include_router(accounts.pages_router)
    app.include_router(signin.router)
    # reading needs a session; any other method an admin's session (a viewer gets 403), besides the
    # routes' own Depends(require_admin): nothing that changes state is left to a viewer by omission
    session = [Depends(require_session), Depends(csrf_guard), Depends(require_admin_to_change)]
    app.include_router(settings_routes.pages_router)
    app.include_router(settings_routes.router, dependencies=session)  # before system's PUT /api/settings
    for area in (system, live, door, timeline, people, frames, accounts):
        app.include_router(area.router, dependencies=session)
    app.include_router(webhook.router)
    app.include_router(live.hook_router)
    return app


def create_webhook_app(dashboard: Dashboard) -> FastAPI:
    """Only the engine's webhook, for `up`'s plain-HTTP loopback listener when the dashboard serves HTTPS."""
    app = create_api_app(
        "smartlock dashboard webhook", "The engine's events.", max_body_bytes=JSON_BODY_BYTES,
        body_limit_for=body_limit_for, status_of=status_for, message_of=message_of, docs=False,
        openapi_url=None,
    )
    app.state.dashboard = dashboard
    install_storage_handlers(app, dashboard)
    app.include_router(webhook.router)
    app.include_router(live.hook_router)
    return app


def install_storage_handlers(app: FastAPI, dashboard: Dashboard) -> None:
    """A full disk is a 503 logged once (dashboard.storage), text UTF-8 cannot hold a 400; other OS and
    SQLite errors stay the kit's 500."""

    def unexpected(request: Request, err: Exception) -> JSONResponse:
        logger.error("%s %s: unexpected error", request.method, request.url.path, exc_info=err)
        return json_message(500, f"internal error ({type(err).__name__}); the server log has the details")

    async def storage_error(request: Request, err: Exception) -> JSONResponse:
        if not storage_trouble(err):
            return unexpected(request, err)
        dashboard.storage.failed(f"{request.method} {request.url.path}", err)
        return json_message(503, "the dashboard cannot save this: its disk is full (or read-only); "
                                 "free some space and try again", headers={"Retry-After": "60"})

    async def not_unicode(request: Request, err: Exception) -> JSONResponse:
        # JSON may carry lone surrogates ("\\ud800") that no file, database or URL can take
        return json_message(400, "the request holds text that is not valid Unicode (a lone surrogate)")

    app.add_exception_handler(OSError, storage_error)
    app.add_exception_handler(sqlite3.Error, storage_error)
    app.add_exception_handler(UnicodeError, not_unicode)
