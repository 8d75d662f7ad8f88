"""Sign-in API: state, sign in (user name + password, throttled), first-run setup through the one-time link
(the first admin account), sign out, changing one's own password. Each lands in the audit."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from smartlock import __version__
from smartlock.errors import ConfigError
from smartlock.web.accounts import FIRST_ACCOUNT, Account, AccountConflict, check_password_rules, username
from smartlock.web.audit import record_action
from smartlock.web.dashboard import Dashboard, DashboardDep
from smartlock.web.routes.guards import (
    COOKIE,
    SessionDep,
    client_address,
    csrf_guard,
    safe_next,
    session_account,
    start_session,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/auth")

WRONG = "wrong password or user name"


@router.get("/state")
async def auth_state(request: Request, d: DashboardDep) -> dict[str, Any]:
    account = session_account(request, d)
    return {"signed_in": account is not None, "password_set": d.accounts.is_set(), "version": __version__,
            "user": account.name if account else None, "role": account.role if account else None}


def _too_many(wait: float, what: str) -> JSONResponse:
    return JSONResponse({"message": f"too many {what}: try again in {wait:.0f} s"},
                        status_code=429, headers={"retry-after": str(int(wait) + 1)})


def _given_name(value: Any) -> str | None:
    """The user name as typed, for the audit and the log, when it is a valid one (else None)."""
    try:
        return username(value)
    except ConfigError:
        return None


@router.post("/login", dependencies=[Depends(csrf_guard)])
def login(request: Request, body: dict[str, Any], d: DashboardDep) -> Response:
    """Sign in; the answer's ``next`` is where to go (the body's ``next`` if it is a path of this site)."""
    address = client_address(request)
    if not d.accounts.is_set():
        return JSONResponse({"message": "no account exists yet: open the setup link printed by "
                                        "`smartlock up`, or restart it with --password-file"},
                            status_code=409)
    wait = d.throttle.begin(address)  # counts from here, before the (slow) password check
    if wait > 0:
        return _too_many(wait, "failed sign-ins")
    name, password = body.get("username"), body.get("password")
    account: Account | None = None
    try:
        if isinstance(name, str) and name.strip() and isinstance(password, str):
            account = d.accounts.authenticate(name, password)
    finally:
        d.throttle.end(address, succeeded=account is not None)
    if account is None:
        # the name only when it is an account: a password typed into the name box must not be kept
        given = _given_name(name)
        known = given if given is not None and d.accounts.get(given) is not None else None
        logger.warning("failed sign-in from %s (%s)", address, f"user {known}" if known else "unknown user")
        record_action(d, known, "sign-in-failed", {"address": address})
        if not isinstance(name, str) or not name.strip() or not isinstance(password, str):
            return JSONResponse({"message": "give your user name and password"}, status_code=400)
        return JSONResponse({"message": WRONG}, status_code=401)
    response = JSONResponse({"message": "signed in", "next": safe_next(body.get("next")),
                             "user": account.name, "role": account.role})
    start_session(response, d, request, account)
    logger.info("%s signed in from %s", account.name, address)
    record_action(d, account.name, "sign-in", {"address": address})
    return response


@router.post("/setup", dependencies=[Depends(csrf_guard)])
def setup(request: Request, body: dict[str, Any], d: DashboardDep) -> Response:
    """The first account, an admin (named ``admin`` unless the body's ``username`` says otherwise)."""
    token, password = body.get("token"), body.get("password")
    name = body.get("username", FIRST_ACCOUNT)
    if d.accounts.is_set():
        return JSONResponse({"message": "an account already exists: sign in"}, status_code=409)
    if not isinstance(token, str) or not d.setup.check(token):
        return JSONResponse({"message": "this setup link is not valid (any more): use the newest link "
                                        "printed by `smartlock up`"}, status_code=403)
    if not isinstance(password, str):
        return JSONResponse({"message": "choose a password"}, status_code=400)
    name = username(name)  # ConfigError (400) for a bad name or password: the token stays valid
    check_password_rules(password)
    if not d.setup.consume(token):
        return JSONResponse({"message": "this setup link was just used"}, status_code=403)
    try:
        account = d.accounts.create_first(name, password)
    except AccountConflict as err:
        return JSONResponse({"message": str(err)}, status_code=409)
    logger.info("the first account, %s (admin), was made through the setup link", account.name)
    record_action(d, account.name, "account-add",
                  {"account": account.name, "role": account.role, "via": "setup link",
                   "address": client_address(request)})
    response = JSONResponse({"message": "account made", "user": account.name, "role": account.role})
    start_session(response, d, request, account)
    return response


@router.post("/logout", dependencies=[Depends(csrf_guard)])
async def logout(request: Request, d: DashboardDep) -> Response:
    account = session_account(request, d)
    d.sessions.revoke(request.cookies.get(COOKIE))
    if account is not None:
        record_action(d, account.name, "sign-out", {"address": client_address(request)})
    response = JSONResponse({"message": "signed out"})
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=d.secure_cookies or request.url.scheme == "https")
    return response


@router.post("/password", dependencies=[Depends(csrf_guard)])
def change_password(request: Request, body: dict[str, Any], d: DashboardDep,
                    me: SessionDep) -> Response:
    """A user changes their own password (the current one required): every session of theirs ends but
    this one, which starts afresh."""
    current, new = body.get("current"), body.get("new")
    address = client_address(request)
    wait = d.throttle.begin(address)  # guessing the current password is throttled like a sign-in
    if wait > 0:
        return _too_many(wait, "wrong passwords")
    ok = False
    try:
        ok = isinstance(current, str) and d.accounts.authenticate(me.name, current) is not None
    finally:
        d.throttle.end(address, succeeded=ok)
    if not ok:
        record_action(d, me.name, "password-change-refused", {"address": address})
        return JSONResponse({"message": "the current password is wrong"}, status_code=403)
    if not isinstance(new, str):
        return JSONResponse({"message": "choose a new password"}, status_code=400)
    return _new_password(request, d, me, new)


def _new_password(request: Request, d: Dashboard, me: Account, new: str) -> Response:
    account = d.accounts.set_password(me.name, new)  # ConfigError (400): nothing changed
    ended = d.sessions.revoke_user(me.name)
    logger.info("%s changed their password (%d session(s) ended)", me.name, ended)
    record_action(d, me.name, "password-change", {"address": client_address(request)})
    response = JSONResponse({"message": "password changed"})
    start_session(response, d, request, account)
    return response
