"""DoorService: what the Door API drives (relay, unlock window, audit); stop() leaves the relay locked.

An audit write that fails never stops the service: ``record`` raises AuditWriteError for the callers
that must act on it (an unlock is refused), ``record_quietly`` logs for the rest (a refusal, a relock,
start and stop), and ``problems()`` names the failure for /health.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

from smartlock.door.auth import RequestVerifier
from smartlock.door.events import AuditWriteError, EventLog
from smartlock.door.lock import DoorLock
from smartlock.door.refusals import RefusalDigest, RefusalKind
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
        self.refusals = RefusalDigest(events)
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
        """Add an audit row with the door's state read back now. Raises AuditWriteError."""
        door, level = self.door_state()
        return self.events.add(action, outcome, door=door, pin_level=level, **fields)

    def record_quietly(self, action: str, outcome: str, **fields: Any) -> int | None:
        """record(), but a failed write is only logged (the EventLog logs it once per burst)."""
        try:
            return self.record(action, outcome, **fields)
        except AuditWriteError as err:
            logger.debug("%s/%s not audited: %s", action, outcome, err)
            return None

    def amend_quietly(self, event_id: int, **fields: Any) -> None:
        """Complete an audit row after the relay moved (its state read back); a failure is only logged."""
        door, level = self.door_state()
        try:
            self.events.amend(event_id, door=door, pin_level=level, **fields)
        except AuditWriteError as err:
            logger.error("audit row %d not completed (%s); the log line above is the record", event_id, err)

    def unlock(self, **fields: Any) -> float:
        """The one unlock path (HTTP and MQTT): audited as pending before the relay moves, then accepted
        (or error). Returns the seconds until relock. Raises AuditWriteError (not recorded: the door stays
        locked) or RelayError (the relay could not be driven: the door stays locked)."""
        event_id = self.record("unlock", "pending", **fields)
        try:
            seconds = self.door.unlock()
        except RelayError as err:
            failed = {"status": 503} if "status" in fields else {}
            self.amend_quietly(event_id, outcome="error", reason=str(err), **failed)
            raise
        self.amend_quietly(event_id, outcome="accepted")
        try:
            self.last_unlock = self.events.last("unlock", "accepted")
        except sqlite3.Error as err:  # the door did open: only /status's last unlock is stale
            logger.warning("unlock accepted, but the audit could not be read back: %s", err)
        return seconds

    def refuse(self, action: str, *, client: str, method: str, status: int, **fields: Any) -> None:
        """Audit a refusal, folded with identical ones (refusals.py); never raises."""
        kind: RefusalKind = (client, method, action, status)
        try:
            self.refusals.refuse(kind, lambda: self.record(action, "refused", client=client, method=method,
                                                           status=status, **fields))
        except AuditWriteError as err:
            logger.debug("refusal not audited: %s", err)

    def problems(self) -> list[str]:
        """What /health reports as degraded: an audit that cannot be written, a relay fault."""
        problems = []
        if self.events.failure is not None:
            problems.append(f"audit cannot be written: {self.events.failure}")
        if self.door.fault is not None:
            problems.append(f"relay fault: {self.door.fault}")
        return problems

    def _on_change(self, action: str, reason: str) -> None:
        outcome = "info" if action == "relock" else "error"
        self.record_quietly(action, outcome, reason=reason)

    def start(self) -> None:
        self.relay.lock()
        door, level = self.door_state()
        logger.info(
            "door service started: relay on %s (%s), %s, pin reads %s; auth: %s",
            self.relay.pin_name, self.relay.gpio_name, door, level, self.auth_mode,
        )
        self.record_quietly("start", "info", reason=f"service started; auth: {self.auth_mode}")

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
                self.refusals.flush()
                self.record_quietly("stop", "error",
                                    reason=f"service stopped ({why}); relay did NOT lock: {err}")
                return
            self.refusals.flush()  # after the relay is locked: the audit never delays that
            door, level = self.door_state()
            logger.info("door service stopping (%s): relay %s, %s reads %s", why, door, self.relay.pin_name,
                        level)
            try:
                self.events.add("stop", "info", reason=f"service stopped ({why})", door=door, pin_level=level)
            except AuditWriteError as err:
                logger.debug("stop not audited: %s", err)
