"""One audit row per burst of identical refusals: a flood from many addresses cannot grow the audit fast.

The first refusal of a kind (address, method, action, status) is written at once, before its answer;
the same kind again within ``window`` seconds only counts in memory, and the count is added to that
row's ``times`` when the window closes (at the next refusal after it, when the audit is read, or when
the service stops). Combined with the refusal limiter (an address is blocked after 10 refusals a
minute), an address costs at most a handful of rows a minute instead of one per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from smartlock.door.events import AuditWriteError, EventLog

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0
MAX_OPEN = 10_000  # open windows remembered; beyond it the oldest are closed early

RefusalKind = tuple[str, str, str, int]  # address, method, action, status


@dataclass
class _Open:
    event_id: int
    until: float
    more: int = 0


class RefusalDigest:
    """Folds repeated refusals into one audit row per kind and window. Thread-safe, bounded memory."""

    def __init__(self, events: EventLog, *, window: float = WINDOW_SECONDS, max_open: int = MAX_OPEN,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.events = events
        self.window = window
        self._max_open = max_open
        self._clock = clock
        self._open: dict[RefusalKind, _Open] = {}  # insertion-ordered: the oldest window first
        self._lock = threading.Lock()

    def refuse(self, kind: RefusalKind, write: Callable[[], int]) -> None:
        """Audit one refusal: ``write()`` adds its row (and may raise AuditWriteError), unless a row of
        the same kind is open, which then counts one more."""
        with self._lock:
            now = self._clock()
            due = self._take_due(now)
            current = self._open.get(kind)
            counted = current is not None and current.until > now
            if current is not None and counted:
                current.more += 1
        self._add_times(due)
        if counted:
            return
        event_id = write()
        with self._lock:
            self._open.pop(kind, None)
            self._open[kind] = _Open(event_id, self._clock() + self.window)
            overflow = []
            while len(self._open) > self._max_open:
                overflow.append(self._open.pop(next(iter(self._open))))
        self._add_times(overflow)

    def flush(self) -> None:
        """Write every pending count now (before the audit is read, and when the service stops)."""
        with self._lock:
            pending = list(self._open.values())
            self._open.clear()
        self._add_times(pending)

    def _take_due(self, now: float) -> list[_Open]:
        due = []
        for kind in [k for k, entry in self._open.items() if entry.until <= now]:
            due.append(self._open.pop(kind))
        return due

    def _add_times(self, entries: list[_Open]) -> None:
        for entry in entries:
            if entry.more:
                try:
                    self.events.add_times(entry.event_id, entry.more)
                except AuditWriteError as err:  # the EventLog already logged the failure once
                    logger.debug("%d repeated refusals not counted: %s", entry.more, err)
