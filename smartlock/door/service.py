"""DoorService: what the Door API drives (relay, unlock window, audit); stop() leaves the relay locked."""

from __future__ import annotations

import logging
import threading
from typing import Any

from smartlock.door.auth import RequestVerifier
from smartlock.door.events import EventLog
from smartlock.door.lock import DoorLock
from smartlock.door.relay import Relay
from smartlock.errors import RelayError

logger = logging.getLogger(__name__)


def auth_mode_of(verifier: RequestVerifier | None) -> str:
    """How requests are authenticated, as /status and the logs say it."""
    return "none (unsigned requests accepted)" if verifier is None else "hmac-sha256"


class DoorService:
    """The relay, its unlock window and the audit log, as one object the routes and the lifespan share."""

    def __init__(self, relay: Relay, events: EventLog, lock_delay: float, *, auth_mode: str) -> None:
        self.relay = relay
        self.events = events
        self.auth_mode = auth_mode
        self.door = DoorLock(relay, lock_delay, on_change=self._on_change)
        self.last_unlock: dict[str, Any] | None = events.last("unlock", "accepted")
        self._stopped = False
        self._stop_lock = threading.Lock()

    def door_state(self) -> tuple[str, str | None]:
        """("locked" | "unlocked" | "unknown", "HIGH" | "LOW" | None), read back from the pin."""
        try:
            return ("locked" if self.relay.locked else "unlocked"), self.relay.level
        except RelayError:
            return "unknown", None

    def record(self, action: str, outcome: str, **fields: Any) -> int:
        door, level = self.door_state()
        return self.events.add(action, outcome, door=door, pin_level=level, **fields)

    def _on_change(self, action: str, reason: str) -> None:
        outcome = "info" if action == "relock" else "error"
        self.record(action, outcome, reason=reason)

    def start(self) -> None:
        self.relay.lock()
        door, level = self.door_state()
        logger.info(
            "door service started: relay on %s (%s), %s, pin reads %s; auth: %s",
            self.relay.pin_name, self.relay.gpio_name, door, level, self.auth_mode,
        )
        self.record("start", "info", reason=f"service started; auth: {self.auth_mode}")

    def stop(self, why: str) -> None:
        """Lock the relay for good and record it, once. Every caller returns only after that is done
        (a stop signal and the server's shutdown both call it; the audit closes after both)."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
            try:
                self.door.close()
            except RelayError as err:
                logger.critical("door service stopping (%s) but the relay did not lock: %s", why, err)
                self.record("stop", "error", reason=f"service stopped ({why}); relay did NOT lock: {err}")
                return
            door, level = self.door_state()
            logger.info("door service stopping (%s): relay %s, %s reads %s", why, door, self.relay.pin_name,
                        level)
            self.events.add("stop", "info", reason=f"service stopped ({why})", door=door, pin_level=level)
