"""Sign-in API: state, sign in (throttled), first-run setup through the one-time link, sign out, password."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from smartlock import __version__
from smartlock.web.auth import check_password_rules
from smartlock.web.dashboard import DashboardDep
from smartlock.web.routes.guards import (
    COOKIE,
    client_address,
    csrf_guard,
    require_session,
    safe_next,
    signed_in,
    start_session,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/auth")


@router.get("/state")
async def auth_state(request: Request, d: DashboardDep) -> dict[str, Any]:
    return {"signed_in": signed_in(request, d), "password_set": d.passwords.is_set(), "version": __version__}


@router.post("/login", dependencies=[Depends(csrf_guard)])
def login(request: Request, body: dict[str, Any], d: DashboardDep) -> Response:
    """Sign in; the answer's ``next`` is where to go (the body's ``next`` if it is a path of this site)."""
    address = client_address(request)
    if not d.passwords.is_set():
        return JSONResponse({"message": "no password is set yet: open the setup link printed by "
                                        "`smartlock up`, or restart it with --password-file"},
                            status_code=409)
    wait = d.throttle.begin(address)  # counts from here, before the (slow) password check
    if wait > 0:
        return JSONResponse({"message": f"too many failed sign-ins: try again in {wait:.0f} s"},
                            status_code=429, headers={"retry-after": str(int(wait) + 1)})
    password = body.get("password")
    ok = False
    try:
        ok = isinstance(password, str) and d.passwords.verify(password)
    finally:
        d.throttle.end(address, succeeded=ok)
    if not ok:
        logger.warning("failed sign-in from %s", address)
        return JSONResponse({"message": "wrong password"}, status_code=401)
    response = JSONResponse({"message": "signed in", "next": safe_next(body.get("next"))})
    start_session(response, d, request)
    logger.info("signed in from %s", address)
    return response


@router.post("/setup", dependencies=[Depends(csrf_guard)])
def setup(request: Request, body: dict[str, Any], d: DashboardDep) -> Response:
    token, password = body.get("token"), body.get("password")
    if d.passwords.is_set():
        return JSONResponse({"message": "a password is already set: sign in"}, status_code=409)
    if not isinstance(token, str) or not d.setup.check(token):
        return JSONResponse({"message": "this setup link is not valid (any more): use the newest link "
                                        "printed by `smartlock up`"}, status_code=403)
    if not isinstance(password, str):
        return JSONResponse({"message": "choose a password"}, status_code=400)
    check_password_rules(password)  # ConfigError (400) when too short: the token stays valid
    if not d.setup.consume(token):
        return JSONResponse({"message": "this setup link was just used"}, status_code=403)
    d.passwords.set(password)
    logger.info("dashboard password chosen through the setup link")
    response = JSONResponse({"message": "password set"})
    start_session(response, d, request)
    return response


@router.post("/logout", dependencies=[Depends(csrf_guard)])
async def logout(request: Request, d: DashboardDep) -> Response:
    d.sessions.revoke(request.cookies.get(COOKIE))
    response = JSONResponse({"message": "signed out"})
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=d.secure_cookies or request.url.scheme == "https")
    return response


@router.post("/password", dependencies=[Depends(csrf_guard), Depends(require_session)])
def change_password(request: Request, body: dict[str, Any], d: DashboardDep) -> Response:
    current, new = body.get("current"), body.get("new")
    address = client_address(request)
    wait = d.throttle.begin(address)  # guessing the current password is throttled like a sign-in
    if wait > 0:
        return JSONResponse({"message": f"too many wrong passwords: try again in {wait:.0f} s"},
                            status_code=429, headers={"retry-after": str(int(wait) + 1)})
    ok = False
    try:
        ok = isinstance(current, str) and d.passwords.verify(current)
    finally:
        d.throttle.end(address, succeeded=ok)
    if not ok:
        return JSONResponse({"message": "the current password is wrong"}, status_code=403)
    if not isinstance(new, str):
        return JSONResponse({"message": "choose a new password"}, status_code=400)
    d.passwords.set(new)
    d.sessions.revoke_all()
    response = JSONResponse({"message": "password changed"})
    start_session(response, d, request)
    return response
