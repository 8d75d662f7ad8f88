"""Sessions, roles and cross-site protection, as dependencies of the dashboard's routes.

Every page and API needs a session except sign-in, first-run setup, the static assets and the engine's
webhook (which carries its own token). A session belongs to an account; whatever changes something
(enroll, remove, lock, settings, accounts) needs an admin's (``require_admin``), a viewer gets 403.
State-changing requests must carry the header
``X-Smartlock-Request: 1`` (a cross-site form cannot set it, and a cross-site script would need CORS, which
is never granted) and, when the browser sends ``Origin``, come from this very origin; the session cookie is
HttpOnly and SameSite=Strict on top.
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated
from urllib.parse import unquote, urlsplit

from fastapi import Depends, Request, Response
from starlette.exceptions import HTTPException

from smartlock.errors import ConfigError
from smartlock.service.origin import REQUEST_HEADER, same_origin
from smartlock.web.accounts import Account
from smartlock.web.audit import record_action
from smartlock.web.dashboard import Dashboard, DashboardDep

logger = logging.getLogger(__name__)

COOKIE = "smartlock_session"
CSRF_HEADER = REQUEST_HEADER
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
VIEWER_REFUSED = "your account may only look: ask an admin to do this"
_NO_ACCOUNT = object()


def session_account(request: Request, dashboard: Dashboard) -> Account | None:
    """The account of the request's session, or None (no cookie, expired, revoked, or made before the
    account's password or role changed); found once per request."""
    cached = getattr(request.state, "account", _NO_ACCOUNT)
    if cached is not _NO_ACCOUNT:
        return cached  # type: ignore[return-value]
    token = request.cookies.get(COOKIE)
    account = None
    found = dashboard.sessions.session(token)
    if found is not None:
        user, epoch = found
        try:
            account = dashboard.accounts.get(user)
        except ConfigError as err:  # an unreadable password file: nobody is signed in
            logger.error("%s", err)
        if account is None or not hmac.compare_digest(account.epoch, epoch):
            dashboard.sessions.revoke(token)
            account = None
    request.state.account = account
    return account


def signed_in(request: Request, dashboard: Dashboard) -> bool:
    return session_account(request, dashboard) is not None


async def csrf_guard(request: Request) -> None:
    """403 for a state-changing request without the anti-CSRF header or from another origin."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.headers.get(CSRF_HEADER) != "1" or not same_origin(request.scope):
        raise HTTPException(403, detail="cross-site request refused")


async def require_session(request: Request, dashboard: DashboardDep) -> Account:
    """401 without a live session; the session's account."""
    account = session_account(request, dashboard)
    if account is None:
        raise HTTPException(401, detail="sign in first")
    return account


async def require_admin(request: Request, dashboard: DashboardDep) -> Account:
    """401 without a live session, 403 for a session whose account may not change anything (a viewer);
    the admin's account. A refusal is recorded in the audit."""
    account = await require_session(request, dashboard)
    if not account.admin:
        record_action(dashboard, account.name, "refused",
                      {"method": request.method, "path": request.url.path[:200]})
        logger.warning("refused %s %s to the viewer %s", request.method, request.url.path, account.name)
        raise HTTPException(403, detail=VIEWER_REFUSED)
    return account


async def require_admin_to_change(request: Request, dashboard: DashboardDep) -> None:
    """For a whole router: reading needs a session, anything else an admin's."""
    if request.method not in SAFE_METHODS:
        await require_admin(request, dashboard)


AdminDep = Annotated[Account, Depends(require_admin)]  # a route's parameter: the admin who asks
SessionDep = Annotated[Account, Depends(require_session)]  # a route's parameter: the signed-in account


def current_user(request: Request) -> str | None:
    """The signed-in user's name, once require_session (or require_admin) has run for this request."""
    account = getattr(request.state, "account", None)
    return account.name if isinstance(account, Account) else None


def client_address(request: Request) -> str:
    """Who is asking, for the sign-in throttle and the log: the socket's peer. A proxy's X-Forwarded-For
    is only believed from the addresses of --forwarded-allow-ips (create_app puts uvicorn's
    ProxyHeadersMiddleware in front for those, and for nobody else)."""
    return request.client.host if request.client else "?"


def start_session(response: Response, dashboard: Dashboard, request: Request, account: Account) -> None:
    """Set the session cookie: HttpOnly, SameSite=Strict, and Secure whenever the dashboard is reached
    over HTTPS (its own TLS, or a trusted proxy's X-Forwarded-Proto) so it never travels in clear."""
    response.set_cookie(
        COOKIE, dashboard.sessions.create(account.name, account.epoch), httponly=True, samesite="strict",
        path="/",
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
