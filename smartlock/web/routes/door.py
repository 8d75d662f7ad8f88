"""The door through the dashboard: its state, "lock now" (recorded in the timeline) and its audit log."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Query

from smartlock.web.dashboard import DashboardDep
from smartlock.web.routes.common import MAX_ROW_ID

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/door")


@router.get("/status")
def door_status(d: DashboardDep) -> dict[str, Any]:
    return d.door.status()


@router.post("/lock")
def door_lock(d: DashboardDep) -> dict[str, Any]:
    d.door.lock()
    d.events.add("lock", details={"by": "dashboard"})
    logger.info("door locked from the dashboard")
    return d.door.status()


@router.get("/events")
def door_events(
    d: DashboardDep,
    limit: int = Query(50, ge=1, le=200),
    before: int | None = Query(None, ge=1, le=MAX_ROW_ID),
) -> dict[str, Any]:
    return d.door.events(limit=limit, before=before)
