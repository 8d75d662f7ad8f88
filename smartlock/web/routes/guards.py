"""Sessions and cross-site protection, as dependencies of the dashboard's routes.

Every page and API needs a session except sign-in, first-run setup, the static assets and the engine's
webhook (which carries its own token). State-changing requests must carry the header
``X-Smartlock-Request: 1`` (a cross-site form cannot set it, and a cross-site script would need CORS, which
is never granted) and, when the browser sends ``Origin``, come from this very origin; the session cookie is
HttpOnly and SameSite=Strict on top.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from fastapi import Request, Response
from starlette.exceptions import HTTPException

from smartlock.service.origin import REQUEST_HEADER, same_origin
from smartlock.web.dashboard import Dashboard, DashboardDep

COOKIE = "smartlock_session"
CSRF_HEADER = REQUEST_HEADER


def signed_in(request: Request, dashboard: Dashboard) -> bool:
    return dashboard.sessions.check(request.cookies.get(COOKIE))


async def csrf_guard(request: Request) -> None:
    """403 for a state-changing request without the anti-CSRF header or from another origin."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.headers.get(CSRF_HEADER) != "1" or not same_origin(request.scope):
        raise HTTPException(403, detail="cross-site request refused")


async def require_session(request: Request, dashboard: DashboardDep) -> None:
    """401 without a live session."""
    if not signed_in(request, dashboard):
        raise HTTPException(401, detail="sign in first")


def client_address(request: Request) -> str:
    """Who is asking, for the sign-in throttle and the log: the socket's peer. A proxy's X-Forwarded-For
    is only believed from the addresses of --forwarded-allow-ips (create_app puts uvicorn's
    ProxyHeadersMiddleware in front for those, and for nobody else)."""
    return request.client.host if request.client else "?"


def start_session(response: Response, dashboard: Dashboard, request: Request) -> None:
    """Set the session cookie: HttpOnly, SameSite=Strict, and Secure whenever the dashboard is reached
    over HTTPS (its own TLS, or a trusted proxy's X-Forwarded-Proto) so it never travels in clear."""
    response.set_cookie(
        COOKIE, dashboard.sessions.create(), httponly=True, samesite="strict", path="/",
        secure=dashboard.secure_cookies or request.url.scheme == "https",
    )


def safe_next(target: object, default: str = "/") -> str:
    """``target`` when it is a path on this very site, else ``default``: where to go after sign-in.

    Browsers read ``/\\evil.example`` as ``//evil.example`` and drop tabs and newlines from URLs, so a
    backslash, a control character or a second leading slash (also percent-encoded) is refused.
    """
    if not isinstance(target, str) or not target.startswith("/") or len(target) > 2048:
        return default
    for text in (target, unquote(target)):
        if "\\" in text or text.startswith("//") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
            return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return default
    return target
