"""The door through the dashboard: its state, "lock now" (an admin's; recorded in the timeline and the audit
of user actions) and the door's own audit log."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Query

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


@router.get("/events")
def door_events(
    d: DashboardDep,
    limit: int = Query(50, ge=1, le=200),
    before: int | None = Query(None, ge=1, le=MAX_ROW_ID),
) -> dict[str, Any]:
    return d.door.events(limit=limit, before=before)
