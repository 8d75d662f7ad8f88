"""The door through the dashboard: its state, "lock now" (an admin's; recorded in the timeline and the audit
of user actions) and the door's own audit log."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Query

from smartlock.errors import ConfigError
from smartlock.web.audit import record_action
from smartlock.web.dashboard import DashboardDep
from smartlock.web.routes.common import MAX_ROW_ID
from smartlock.web.routes.guards import AdminDep

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/door")


@router.get("/status")
def door_status(d: DashboardDep) -> dict[str, Any]:
    return d.door.status()


@router.post("/lock")
def door_lock(d: DashboardDep, admin: AdminDep) -> dict[str, Any]:
    d.door.lock()
    record_action(d, admin.name, "lock", {})
    d.events.add("lock", details={"by": "dashboard"})  # who: in the audit of user actions
    logger.info("door locked from the dashboard by %s", admin.name)
    return d.door.status()


@router.get("/face-unlock")
def face_unlock_state(d: DashboardDep) -> dict[str, Any]:
    """Whether the engine paused face unlock after repeated presentation attacks (and until when)."""
    from smartlock.engine.spoofing import LOCKOUT_FILE, read_state

    if d.log_path is None:
        return {"paused_until": None, "recent_attacks": 0}
    state = read_state(d.log_path / LOCKOUT_FILE)
    now = time.time()
    return {"paused_until": state.until if state.until > now else None,
            "recent_attacks": len([t for t in state.attacks if now - t <= 600]), "lifted_by": state.lifted_by}


@router.post("/face-unlock/resume")
def face_unlock_resume(d: DashboardDep, admin: AdminDep) -> dict[str, Any]:
    """An admin ends the pause now; the engine sees it at its next decision."""
    from smartlock.engine.spoofing import lift_lockout

    if d.log_path is None:
        raise ConfigError("this dashboard does not know the engine's log folder")
    was_paused = lift_lockout(d.log_path, by=admin.name)
    record_action(d, admin.name, "resume face unlock", {"was_paused": was_paused})
    logger.warning("face unlock resumed from the dashboard by %s (was paused: %s)", admin.name, was_paused)
    return face_unlock_state(d)


@router.get("/events")
def door_events(
    d: DashboardDep,
    limit: int = Query(50, ge=1, le=200),
    before: int | None = Query(None, ge=1, le=MAX_ROW_ID),
) -> dict[str, Any]:
    return d.door.events(limit=limit, before=before)
