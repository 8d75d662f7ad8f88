"""The dashboard's FastAPI app: sign-in and sessions, the pages, security headers and error conversion.

Every page and API needs a session except sign-in, first-run setup, the static assets and the engine's
webhook (which has its own secret in the URL). State-changing requests must carry the header
``X-Smartlock-Request: 1`` (a cross-site form cannot set it, and a cross-site script would need CORS, which
is never granted) and, when the browser sends ``Origin``, come from this very origin; the session cookie is
HttpOnly and SameSite=Strict on top.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smartlock import __version__
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
from smartlock.web.auth import LoginThrottle, PasswordStore, SessionStore, SetupToken, check_password_rules
from smartlock.web.events import EventStore
from smartlock.web.services import CameraLink, CaptureStore, CollectedFrames, Door, LiveFaces, Recognition
from smartlock.web.settings import SettingsStore

log = logging.getLogger(__name__)

COOKIE = "smartlock_session"
CSRF_HEADER = "X-Smartlock-Request"
PAGES = ("live", "events", "people", "calibration")
STATIC_DIR = Path(str(resources.files("smartlock.web") / "static"))
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


@dataclass
class Dashboard:
    """Everything the dashboard's routes use; `smartlock up` builds it, tests build it with fakes."""

    passwords: PasswordStore
    camera: CameraLink
    recognition: Recognition
    door: Door
    events: EventStore
    settings: SettingsStore
    captures: CaptureStore
    collected: CollectedFrames | None = None
    webhook_token: str | None = None
    log_path: Path | None = None  # the engine's --log-path (unlock frames)
    model_dir: Path | None = None  # the recognition model (face crops of enrolled photos)
    system_status: Callable[[], list[dict]] = lambda: []
    sessions: SessionStore = field(default_factory=SessionStore)
    setup: SetupToken = field(default_factory=SetupToken)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    secure_cookies: bool = False
    live: LiveFaces | None = None

    def __post_init__(self) -> None:
        if self.live is None:
            self.live = LiveFaces(self.camera, self.recognition)


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
    """One place that maps domain errors to HTTP statuses."""
    if isinstance(err, ServiceRefused):
        return err.status_code if err.status_code in (400, 404, 409, 413, 422) else 502
    if isinstance(err, NotEnrolled):
        return 404
    if isinstance(err, BadImageError | GalleryError | ConfigError):
        return 400
    if isinstance(err, ServiceError | DoorError):
        return 502
    return 500


def _service_message(err: SmartlockError) -> str:
    text = str(err) or type(err).__name__
    if isinstance(err, ServiceRefused) and err.status_code < 500:
        # "POST http://127.0.0.1:5xxxx/people/x/images: 400: bad name" -> "bad name"
        parts = text.split(": ", 2)
        return parts[2] if len(parts) == 3 else text
    return text


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


def create_app(dashboard: Dashboard) -> FastAPI:
    """The dashboard app around ``dashboard``'s collaborators (see Dashboard)."""
    app = FastAPI(title="smartlock dashboard", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.dashboard = dashboard
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _install_error_handlers(app)

    def signed_in(request: Request) -> bool:
        return dashboard.sessions.check(request.cookies.get(COOKIE))

    async def csrf_guard(request: Request) -> None:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return
        if request.headers.get(CSRF_HEADER) != "1" or not _same_origin(request):
            raise HTTPException(403, detail="cross-site request refused")

    async def require_session(request: Request) -> None:
        if not signed_in(request):
            raise HTTPException(401, detail="sign in first")

    def start_session(response: Response) -> None:
        response.set_cookie(
            COOKIE, dashboard.sessions.create(), httponly=True, samesite="strict", path="/",
            secure=dashboard.secure_cookies,
        )

    # -- pages -------------------------------------------------------------------------------------

    def page(name: str) -> FileResponse:
        return FileResponse(STATIC_DIR / f"{name}.html", headers={"cache-control": "no-store"})

    @app.get("/", include_in_schema=False)
    async def root(request: Request) -> Response:
        return RedirectResponse("/live" if signed_in(request) else "/login", status_code=303)

    @app.get("/login", include_in_schema=False)
    async def login_page(request: Request) -> Response:
        if signed_in(request):
            return RedirectResponse("/live", status_code=303)
        if not dashboard.passwords.is_set():
            return page("nopassword")
        return page("login")

    @app.get("/setup", include_in_schema=False)
    async def setup_page(request: Request) -> Response:
        if dashboard.passwords.is_set():
            return RedirectResponse("/login", status_code=303)
        return page("setup")

    for name in PAGES:
        app.add_api_route(f"/{name}", _page_route(name, signed_in, page), methods=["GET"],
                          include_in_schema=False)

    # -- sign-in API ---------------------------------------------------------------------------------

    @app.get("/api/auth/state")
    async def auth_state(request: Request) -> dict[str, Any]:
        return {"signed_in": signed_in(request), "password_set": dashboard.passwords.is_set(),
                "version": __version__}

    @app.post("/api/auth/login", dependencies=[Depends(csrf_guard)])
    def login(request: Request, body: dict[str, Any]) -> Response:
        address = request.client.host if request.client else "?"
        wait = dashboard.throttle.retry_after(address)
        if wait > 0:
            return JSONResponse({"message": f"too many failed sign-ins: try again in {wait:.0f} s"},
                                status_code=429, headers={"retry-after": str(int(wait) + 1)})
        if not dashboard.passwords.is_set():
            return JSONResponse({"message": "no password is set yet: open the setup link printed by "
                                            "`smartlock up`, or restart it with --password-file"},
                                status_code=409)
        password = body.get("password")
        if not isinstance(password, str) or not dashboard.passwords.verify(password):
            dashboard.throttle.failed(address)
            log.warning("failed sign-in from %s", address)
            return JSONResponse({"message": "wrong password"}, status_code=401)
        dashboard.throttle.succeeded(address)
        response = JSONResponse({"message": "signed in"})
        start_session(response)
        log.info("signed in from %s", address)
        return response

    @app.post("/api/auth/setup", dependencies=[Depends(csrf_guard)])
    def setup(request: Request, body: dict[str, Any]) -> Response:
        token, password = body.get("token"), body.get("password")
        if dashboard.passwords.is_set():
            return JSONResponse({"message": "a password is already set: sign in"}, status_code=409)
        if not isinstance(token, str) or not dashboard.setup.check(token):
            return JSONResponse({"message": "this setup link is not valid (any more): use the newest link "
                                            "printed by `smartlock up`"}, status_code=403)
        if not isinstance(password, str):
            return JSONResponse({"message": "choose a password"}, status_code=400)
        check_password_rules(password)  # ConfigError (400) when too short: the token stays valid
        if not dashboard.setup.consume(token):
            return JSONResponse({"message": "this setup link was just used"}, status_code=403)
        dashboard.passwords.set(password)
        log.info("dashboard password chosen through the setup link")
        response = JSONResponse({"message": "password set"})
        start_session(response)
        return response

    @app.post("/api/auth/logout", dependencies=[Depends(csrf_guard)])
    async def logout(request: Request) -> Response:
        dashboard.sessions.revoke(request.cookies.get(COOKIE))
        response = JSONResponse({"message": "signed out"})
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    @app.post("/api/auth/password", dependencies=[Depends(csrf_guard), Depends(require_session)])
    def change_password(request: Request, body: dict[str, Any]) -> Response:
        current, new = body.get("current"), body.get("new")
        if not isinstance(current, str) or not dashboard.passwords.verify(current):
            return JSONResponse({"message": "the current password is wrong"}, status_code=403)
        if not isinstance(new, str):
            return JSONResponse({"message": "choose a new password"}, status_code=400)
        dashboard.passwords.set(new)
        dashboard.sessions.revoke_all()
        response = JSONResponse({"message": "password changed"})
        start_session(response)
        return response

    from smartlock.web.routes import build_router, build_webhook

    app.include_router(build_router(dashboard), dependencies=[Depends(require_session), Depends(csrf_guard)])
    app.include_router(build_webhook(dashboard))
    return app


def _page_route(name: str, signed_in: Callable[[Request], bool], page: Callable[[str], FileResponse]):
    async def show(request: Request) -> Response:
        if not signed_in(request):
            return RedirectResponse(f"/login?next=/{name}", status_code=303)
        return page(name)

    show.__name__ = f"page_{name}"
    return show


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SmartlockError)
    async def domain_error(request: Request, err: SmartlockError) -> JSONResponse:
        status = status_for(err)
        if status >= 500:
            log.warning("%s %s: %s", request.method, request.url.path, err)
        return JSONResponse({"message": _service_message(err)}, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse({"message": str(err.detail)}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}" for e in err.errors()]
        return JSONResponse({"message": "; ".join(parts) or "invalid request"}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=err)
        message = f"internal error ({type(err).__name__}); see the log"
        return JSONResponse({"message": message}, status_code=500)
