"""The dashboard's HTML pages: sign-in and setup for everyone, the rest only with a session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from smartlock.web.dashboard import DashboardDep
from smartlock.web.routes.guards import safe_next, signed_in

PAGES = ("live", "events", "people", "calibration")
STATIC_DIR = Path(str(resources.files("smartlock.web") / "static"))

router = APIRouter(include_in_schema=False)


def page(name: str) -> FileResponse:
    return FileResponse(STATIC_DIR / f"{name}.html", headers={"cache-control": "no-store"})


@router.get("/")
async def root(request: Request, d: DashboardDep) -> Response:
    return RedirectResponse("/live" if signed_in(request, d) else "/login", status_code=303)


@router.get("/login")
async def login_page(request: Request, d: DashboardDep) -> Response:
    if signed_in(request, d):
        target = request.query_params.get("next")
        return RedirectResponse("/live" if target is None else safe_next(target), status_code=303)
    if not d.passwords.is_set():
        return page("nopassword")
    return page("login")


@router.get("/setup")
async def setup_page(d: DashboardDep) -> Response:
    if d.passwords.is_set():
        return RedirectResponse("/login", status_code=303)
    return page("setup")


def _signed_in_page(name: str) -> Callable[[Request, DashboardDep], Awaitable[Response]]:
    async def show(request: Request, d: DashboardDep) -> Response:
        if not signed_in(request, d):
            return RedirectResponse(f"/login?next=/{name}", status_code=303)
        return page(name)

    show.__name__ = f"page_{name}"
    return show


for _name in PAGES:
    router.add_api_route(f"/{_name}", _signed_in_page(_name), methods=["GET"])
