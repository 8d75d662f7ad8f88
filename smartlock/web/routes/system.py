"""The system's API: the parts' states, the recognizer's calibration and the dashboard's settings."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Query

from smartlock import __version__
from smartlock.recognition.calibration import estimate_false_accept
from smartlock.web import door_liveness
from smartlock.web.dashboard import DashboardDep

router = APIRouter(prefix="/api")


@router.get("/system")
def system(d: DashboardDep) -> dict[str, Any]:
    return {"version": __version__, "children": d.system_status(),
            "settings": {"threshold": d.settings.current.threshold}, "storage_problem": d.storage.problem,
            "mqtt": d.mqtt_status() if d.mqtt_status is not None else None}


@router.get("/calibration")
def calibration(d: DashboardDep, threshold: float | None = Query(None, gt=0, lt=1)) -> dict[str, Any]:
    data = d.recognition.calibration()
    current = d.settings.current.threshold
    chosen = threshold if threshold is not None else current
    return {"calibration": data, "threshold": current, "estimate": estimate_false_accept(data, chosen)}


@router.get("/calibration/liveness")
def liveness_at_the_door(d: DashboardDep, days: float = Query(30, gt=0, le=3650)) -> dict[str, Any]:
    """Liveness measured at this door over the timeline's last ``days`` (``smartlock.web.door_liveness``)."""
    since = time.time() - days * 86400
    rows = d.events.between(since, limit=door_liveness.MAX_ROWS, kinds=door_liveness.KINDS, newest_first=True)
    return {"days": days, "since": since, "complete": len(rows) < door_liveness.MAX_ROWS,
            **door_liveness.summary(rows)}
