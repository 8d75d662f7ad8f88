"""Accounts API (admins: list, add, role, reset a password, remove), who am I, and the audit of user actions.

Each change lands in the audit; a change to an account ends that account's sessions (a new password, a
demotion, a removal). The last admin can be neither removed nor demoted (409).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from smartlock.web.accounts import Account, AccountConflict, UnknownAccount
from smartlock.web.audit import record_action
from smartlock.web.dashboard import Dashboard, DashboardDep
from smartlock.web.routes.common import json_fields
from smartlock.web.routes.guards import AdminDep, SessionDep, client_address, require_admin, signed_in
from smartlock.web.routes.pages import page

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api")
pages_router = APIRouter(include_in_schema=False)

MAX_TIME = 1e11  # epoch seconds far beyond any clock: bigger is a 422, not an overflow


@pages_router.get("/accounts")
async def accounts_page(request: Request, d: DashboardDep) -> Response:
    if not signed_in(request, d):
        return RedirectResponse("/login?next=/accounts", status_code=303)
    return page("accounts")


@router.get("/me")
async def me(account: SessionDep) -> dict[str, Any]:
    return {"user": account.name, "role": account.role}


@router.get("/audit")
def audit(
    d: DashboardDep,
    since: float | None = Query(None, ge=0, le=MAX_TIME),
    until: float | None = Query(None, ge=0, le=MAX_TIME),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """What users did, newest first: {"actions": [{"id", "time", "user", "action", "details"}]}."""
    return {"actions": d.audit.list(since=since, until=until, limit=limit)}


@router.get("/accounts", dependencies=[Depends(require_admin)])
def list_accounts(d: DashboardDep) -> dict[str, Any]:
    return {"accounts": [account.to_api() for account in d.accounts.accounts()]}


@router.post("/accounts")
def add_account(request: Request, body: dict[str, Any], d: DashboardDep,
                admin: AdminDep) -> Response:
    name, password, role = json_fields(body, "username", "password", "role")
    try:
        account = d.accounts.add(name, password, role if role is not None else "viewer")
    except AccountConflict as err:
        return _conflict(err)
    logger.info("%s added the account %s (%s)", admin.name, account.name, account.role)
    _audit(d, admin, request, "account-add", account.name, role=account.role)
    return JSONResponse({"message": f"added {account.name} ({account.role})", "account": account.to_api()},
                        status_code=201)


@router.put("/accounts/{name}/role")
def set_role(name: str, request: Request, body: dict[str, Any], d: DashboardDep,
             admin: AdminDep) -> Response:
    (role,) = json_fields(body, "role")
    try:
        before = d.accounts.get(name)
        account = d.accounts.set_role(name, role)
    except (AccountConflict, UnknownAccount) as err:
        return _conflict(err)
    if before is not None and before.role != account.role:
        d.sessions.revoke_user(account.name)
        logger.info("%s made %s %s", admin.name, account.name, account.role)
        _audit(d, admin, request, "account-role", account.name, role=account.role, was=before.role)
    return JSONResponse({"message": f"{account.name} is {_a(account.role)}", "account": account.to_api()})


@router.put("/accounts/{name}/password")
def reset_password(name: str, request: Request, body: dict[str, Any], d: DashboardDep,
                   admin: AdminDep) -> Response:
    (password,) = json_fields(body, "password")
    try:
        account = d.accounts.set_password(name, password)
    except UnknownAccount as err:
        return _conflict(err)
    ended = d.sessions.revoke_user(account.name)
    logger.info("%s reset the password of %s (%d session(s) ended)", admin.name, account.name, ended)
    _audit(d, admin, request, "account-password-reset", account.name)
    return JSONResponse({"message": f"new password for {account.name}; they sign in with it now"})


@router.delete("/accounts/{name}")
def remove_account(name: str, request: Request, d: DashboardDep,
                   admin: AdminDep) -> Response:
    try:
        account = d.accounts.remove(name)
    except (AccountConflict, UnknownAccount) as err:
        return _conflict(err)
    d.sessions.revoke_user(account.name)
    logger.info("%s removed the account %s", admin.name, account.name)
    _audit(d, admin, request, "account-remove", account.name, role=account.role)
    return JSONResponse({"message": f"removed the account {account.name}"})


def _conflict(err: Exception) -> JSONResponse:
    status = 404 if isinstance(err, UnknownAccount) else 409
    return JSONResponse({"message": str(err)}, status_code=status)


def _audit(d: Dashboard, admin: Account, request: Request, action: str, account: str, **details: Any) -> None:
    record_action(d, admin.name, action, {"account": account, **details, "address": client_address(request)})


def _a(role: str) -> str:
    return f"an {role}" if role == "admin" else f"a {role}"

