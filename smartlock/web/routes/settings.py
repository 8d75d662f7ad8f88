"""The Settings page and its API (admins): read the settings, change some, see which parts were restarted.

``PUT /api/settings`` takes any subset of the settings (and ``mqtt_password`` / ``mqtt_unlock_code``, which
are never answered back); a refused value is a 400 ``{"message", "field"}`` with nothing changed, a part
that does not come up with the new settings a 502 with the old settings back in place.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from smartlock.engine.settings import EngineSettings
from smartlock.web.audit import record_action
from smartlock.web.dashboard import Dashboard, DashboardDep
from smartlock.web.routes.guards import current_user, require_admin, signed_in
from smartlock.web.routes.pages import page
from smartlock.web.settings import LABELS, PART_LABELS, RESTARTS, SECRET_INPUTS, ApplyFailed, SettingsError

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/settings", dependencies=[Depends(require_admin)])
pages_router = APIRouter(include_in_schema=False)


@pages_router.get("/settings")
async def settings_page(request: Request, d: DashboardDep) -> Response:
    if not signed_in(request, d):
        return RedirectResponse("/login?next=/settings", status_code=303)
    return page("settings")


@router.get("")
def read_settings(d: DashboardDep) -> dict[str, Any]:
    return settings_json(d)


@router.put("")
def change_settings(request: Request, body: dict[str, Any], d: DashboardDep) -> Response:
    try:
        change = d.settings.change(body)
    except SettingsError as err:
        return JSONResponse({"message": str(err), "field": err.field}, status_code=err.status)
    except ApplyFailed as err:
        logger.error("settings not applied: %s", err)
        record_action(d, current_user(request), "settings-failed",
                      {"changed": sorted(body), "failed": err.failed})
        return JSONResponse({"message": str(err), "field": None, "failed": err.failed,
                             "restarted": err.restarted}, status_code=502)
    details = {name: ("changed" if name in SECRET_INPUTS else getattr(change.settings, name))
               for name in sorted(body)}
    record_action(d, current_user(request), "settings",
                  {"changed": details, "restarted": change.restarted})
    return JSONResponse({**settings_json(d), "restarted": change.restarted,
                         "message": message(sorted(body), change.restarted)})


def message(names: list[str], restarted: list[str]) -> str:
    what = ", ".join(LABELS.get(name, name) for name in names)
    parts = [PART_LABELS.get(part, part) for part in restarted if part != "dashboard"]
    if parts:
        return f"Saved {what}; restarted: {', '.join(parts)}."
    if restarted:
        return f"Saved {what}; applied at once (nothing restarted)."
    return f"Saved {what}; nothing needed a restart."


def settings_json(d: Dashboard) -> dict[str, Any]:
    store = d.settings
    return {
        "settings": store.current.model_dump(),
        "from_command_line": store.from_command_line,
        "restarts": {name: [PART_LABELS.get(part, part) for part in parts]
                     for name, parts in RESTARTS.items()},
        "liveness": "liveness" in EngineSettings.model_fields,  # the engine has the flag: the box is live
    }
