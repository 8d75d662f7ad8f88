"""Turns the engine's webhook events into timeline rows, with the frame that goes with each.

The engine posts ``{"event": "unlocked" | "recognised" | "refused-unknown", "time": ISO-8601, ...}``.
Unlocks become ``unlock`` rows (the frame is the one the engine saved with the unlock, found through
``smartlock.engine.files.find_unlock_frame``). A ``refused-unknown`` event (nobody above the
threshold) becomes a ``sighting`` when its best guess is at least ``SIGHTING_FLOOR`` likely (someone
enrolled, seen below the threshold) and a ``stranger`` otherwise; its frame is the camera's snapshot taken
on arrival. ``recognised`` events (above the threshold) are steps toward an unlock and are not shown.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SIGHTING_FLOOR = 0.5  # calibrated confidence: from here on, more likely that person than not


@dataclass(frozen=True)
class TimelineEntry:
    kind: str
    person: str | None
    confidence: float | None
    when: float
    details: dict = field(default_factory=dict)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _when(value: Any) -> float:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return time.time()
        return parsed.timestamp() if parsed.tzinfo else parsed.astimezone().timestamp()
    number = _number(value)
    return number if number is not None and number > 1e9 else time.time()


def _text(value: Any, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def entry_from_engine(payload: Any) -> TimelineEntry | None:
    """The timeline row for one engine event, or None for events the timeline does not show."""
    if not isinstance(payload, dict):
        return None
    name = str(payload.get("event") or payload.get("type") or "").lower().replace("_", "-")
    when = _when(payload.get("time"))
    keep = {
        k: v for k, v in payload.items() if k not in ("event", "time") and isinstance(v, str | int | float)
    }
    if name in ("unlocked", "unlock"):
        return TimelineEntry(
            "unlock", _text(payload.get("person") or payload.get("label")),
            _number(payload.get("confidence")), when, keep,
        )
    if name in ("refused-unknown", "stranger", "refused"):
        best = _text(payload.get("best_label") or payload.get("person"))
        confidence = _number(payload.get("best_confidence", payload.get("confidence")))
        if best and confidence is not None and confidence >= SIGHTING_FLOOR and best != "unknown":
            return TimelineEntry("sighting", best, confidence, when, keep)
        return TimelineEntry("stranger", None, confidence, when, {**keep, "best_label": best})
    if name == "refused-spoof":  # a photo, card or screen of someone enrolled (or liveness undecided)
        fired = payload.get("decided_by")
        cues = ", ".join(str(cue)[:40] for cue in fired[:8]) if isinstance(fired, list) else ""
        return TimelineEntry("spoof", _text(payload.get("person")), _number(payload.get("confidence")), when,
                             {**keep, "cues": cues})
    if name == "lockout":
        return TimelineEntry("lockout", None, None, when, keep)
    return None

