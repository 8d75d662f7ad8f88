"""Liveness at this door, from the timeline: the enrolled people's own face unlocks judged live (and how long
their decision waited for it) against the faces recognised as them that liveness refused.

There is no attack data here: a refusal is an attack caught or one of the door's own people refused, and
the timeline cannot tell which (the Calibration page says so, next to the bench's figures).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from typing import Any

from smartlock.web.events import Event

REASONS = ("attack", "timeout", "undecided")  # the engine's refused-spoof reasons ("other": any else)
KINDS = ("unlock", "spoof")  # the timeline rows read
MAX_PEOPLE = 10  # the people listed, most refused first
MAX_ROWS = 100_000  # the newest rows read; ``oldest`` says how far back they reach


def _wait(event: Event) -> float | None:
    value = event.details.get("liveness_wait")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 3600:
        return None
    return float(value)


def summary(events: Iterable[Event]) -> dict[str, Any]:
    """Face unlocks by how liveness judged them ("live", "off", "unknown" for events from before the
    engine said), the live ones' waits, refusals by reason and by the cues that caught them, the people
    with refusals (each with their live unlocks beside), and the oldest row's time."""
    unlocks: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    cues: Counter[str] = Counter()
    live_by: Counter[str] = Counter()
    refused_by: Counter[str] = Counter()
    waits: list[float] = []
    oldest: float | None = None
    for event in events:
        oldest = event.time if oldest is None else min(oldest, event.time)
        if event.kind == "unlock":
            state = event.details.get("liveness")
            state = state if state in ("live", "off") else "unknown"
            unlocks[state] += 1
            if state == "live":
                live_by[event.person or "?"] += 1
                wait = _wait(event)
                if wait is not None:
                    waits.append(wait)
        elif event.kind == "spoof":
            reason = event.details.get("reason")
            refused[reason if reason in REASONS else "other"] += event.count
            refused_by[event.person or "?"] += event.count
            named = event.details.get("cues")
            if reason == "attack" and isinstance(named, str):
                for cue in filter(None, (part.strip() for part in named.split(","))):
                    cues[cue] += event.count
    people = [{"person": person, "refused": count, "live": live_by.get(person, 0)}
              for person, count in sorted(refused_by.items(), key=lambda item: (-item[1], item[0]))]
    return {
        "unlocks": {state: unlocks.get(state, 0) for state in ("live", "off", "unknown")},
        "wait": {"count": len(waits),
                 "median": round(statistics.median(waits), 3) if waits else None,
                 "p90": round(statistics.quantiles(waits, n=10, method="inclusive")[-1], 3)
                 if len(waits) >= 2 else None},
        "refused": {reason: refused.get(reason, 0) for reason in (*REASONS, "other")},
        "cues": dict(cues.most_common()),
        "people": people[:MAX_PEOPLE],
        "oldest": oldest,  # the time of the oldest row counted (None: none)
    }
