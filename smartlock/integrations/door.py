"""The door on MQTT: its lock state (retained, on every change) and the lock commands Home Assistant sends.

Commands go through DoorService (audited with source "mqtt", the unlock before the relay moves). LOCK is
always obeyed; UNLOCK and OPEN only with --mqtt-allow-unlock and the code of --mqtt-unlock-code-file. A
retained command, a malformed, oversized or unknown payload is ignored with a log line.

Limits (a publisher on the broker is not trusted):
- at most ``COMMAND_RATE`` commands per ``COMMAND_PER`` s (a token bucket); the excess is dropped without an
  audit row and logged once per flood. A LOCK while the door is unlocked always passes (not while
  JAMMED: each would audit an error).
- refused unlocks are folded: the first one of a ``FOLD_WINDOW`` is audited, the rest as one
  "N more refused" row when the window ends, so a flood cannot prune the audit history.
- ``MAX_FAILURES`` wrong codes (or refused unlocks) within ``FAILURE_WINDOW`` s lock MQTT unlocks out for
  ``FIRST_LOCKOUT`` s, doubling with each lockout; logged and audited once per lockout. LOCK still works.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from smartlock.door.events import AuditWriteError
from smartlock.door.service import DoorService
from smartlock.errors import ConfigError, RelayError
from smartlock.integrations.discovery import lock_config
from smartlock.integrations.limits import Clock, Lockout, TokenBucket
from smartlock.integrations.mqtt import MqttLink
from smartlock.integrations.settings import MqttSettings
from smartlock.service import read_secret

logger = logging.getLogger(__name__)

COMMANDS = ("LOCK", "UNLOCK", "OPEN")
MIN_CODE = 6  # characters of the --mqtt-unlock-code-file code
COMMAND_RATE, COMMAND_PER = 10, 10.0  # commands per seconds, then dropped
FOLD_WINDOW = 60.0  # s: one audit row for the first refusal, one for the rest
MAX_FAILURES, FAILURE_WINDOW, FIRST_LOCKOUT = 5, 600.0, 60.0


class DoorMqtt:
    """Publishes the door's state and discovery, and obeys lock commands."""

    def __init__(self, service: DoorService, settings: MqttSettings, link: MqttLink | None = None, *,
                 clock: Clock = time.monotonic) -> None:
        self.service = service
        self.settings = settings
        self.clock = clock
        if settings.mqtt_allow_unlock and settings.mqtt_unlock_code_file is None:
            raise ConfigError("--mqtt-allow-unlock needs --mqtt-unlock-code-file (a 0600 file holding a code "
                              f"of at least {MIN_CODE} characters)")
        self._code = (None if settings.mqtt_unlock_code_file is None
                      else read_secret(settings.mqtt_unlock_code_file, "MQTT unlock code file"))
        if self._code is not None and len(self._code) < MIN_CODE:
            raise ConfigError(f"the MQTT unlock code in {settings.mqtt_unlock_code_file} is too short: give "
                              f"at least {MIN_CODE} characters")
        self.link = link or MqttLink(settings, "door", clock=clock)
        self.topics = self.link.topics
        self.bucket = TokenBucket(COMMAND_RATE, COMMAND_PER, clock)
        self.lockout = Lockout(MAX_FAILURES, FAILURE_WINDOW, FIRST_LOCKOUT, clock=clock)
        self.handled = 0  # command messages seen (passed, dropped or refused): tests wait on it
        self.refused = 0  # unlocks refused (audited or folded)
        self._fold_lock = threading.Lock()
        self._fold_start: float | None = None
        self._folded = 0
        self._fold_timer: threading.Timer | None = None
        self.link.subscribe(self.topics.command, self._command)
        self.link.on_connect(self._announce)
        service.door.add_listener(self.publish_state)

    def start(self) -> DoorMqtt:
        broker = self.link.broker
        if self.settings.mqtt_allow_unlock and not broker.tls:
            logger.warning("MQTT: UNLOCK/OPEN allowed over plain mqtt://%s:%d: the unlock code travels in "
                           "clear text and anyone on the network can read it; use an mqtts:// --mqtt-url",
                           broker.host, broker.port)
        self.link.start()
        return self

    def stop(self) -> None:
        self.flush_refusals(force=True)
        timer = self._fold_timer
        if timer is not None:
            timer.cancel()
        self.publish_state()
        self.link.stop()

    def state(self) -> str:
        """LOCKED, UNLOCKED or JAMMED (a relay fault, or a pin that cannot be read)."""
        door, _ = self.service.door_state()
        if self.service.door.fault is not None or door == "unknown":
            return "JAMMED"
        return "LOCKED" if door == "locked" else "UNLOCKED"

    def publish_state(self) -> None:
        """Queue the state (retained); called on every change of the relay, never blocks."""
        payload = {"state": self.state(), "seconds_left": round(self.service.door.seconds_left(), 3),
                   "fault": self.service.door.fault, "door": self.settings.door_name,
                   "time": datetime.now(UTC).isoformat(timespec="seconds")}
        self.link.publish(self.topics.state, json.dumps(payload), retain=True)

    def _announce(self) -> None:
        topic, config = lock_config(self.settings.door_name, allow_unlock=self.settings.mqtt_allow_unlock,
                                    with_code=self._code is not None)
        self.link.publish(topic, json.dumps(config), retain=True)
        self.publish_state()

    # -- commands ------------------------------------------------------------------------------------

    def _command(self, topic: str, payload: bytes, retained: bool) -> None:
        try:
            self._handle(topic, payload, retained)
        finally:
            self.handled += 1

    def _handle(self, topic: str, payload: bytes, retained: bool) -> None:
        self.flush_refusals()
        parsed = parse_command(payload)
        urgent = parsed is not None and parsed[0] == "LOCK" and self.state() == "UNLOCKED"
        if not urgent and not self._take():
            return
        if retained:
            logger.warning("MQTT: retained command on %s ignored (a retained command replays on every "
                           "reconnect)", topic)
            return
        if parsed is None:  # the length only: the payload may hold the unlock code
            logger.warning("MQTT: malformed %d-byte command on %s ignored", len(payload), topic)
            return
        action, code = parsed
        if action == "LOCK":
            self._lock()
        elif not self.settings.mqtt_allow_unlock:
            self._refuse(action, "MQTT unlock not allowed",
                         "this door takes no unlocks from MQTT (--mqtt-allow-unlock)")
        elif self.lockout.seconds_left() > 0:
            self._refuse(action, "MQTT unlocks locked out",
                         f"locked out for {self.lockout.seconds_left():.0f} s more after wrong codes")
        elif self._code is not None and not hmac.compare_digest((code or "").encode(), self._code.encode()):
            self._refuse(action, "wrong code", "wrong or missing code")
            length = self.lockout.fail()
            if length is not None:
                logger.error("MQTT: %d wrong unlock codes within %.0f s: MQTT unlocks refused for %.0f s "
                             "(LOCK still works); someone may be guessing the code", MAX_FAILURES,
                             FAILURE_WINDOW, length)
                self.service.record_quietly("unlock", "refused", source="mqtt", client="mqtt",
                                            reason=f"MQTT unlocks locked out for {length:.0f} s after "
                                                   f"{MAX_FAILURES} wrong codes")
        else:
            self._unlock(action)

    def _take(self) -> bool:
        """A token of the bucket; without one the command is dropped (logged once per flood, not audited)."""
        if self.bucket.take():
            ended = self.bucket.end_burst()
            if ended:
                logger.warning("MQTT: command flood over: %d command(s) dropped", ended)
            return True
        if self.bucket.in_burst == 1:
            logger.warning("MQTT: command flood on %s: more than %d commands in %.0f s, the rest dropped "
                           "(not audited) until it stops", self.topics.command, COMMAND_RATE, COMMAND_PER)
        return False

    def _refuse(self, action: str, reason: str, why: str) -> None:
        """Audit the first refusal of a FOLD_WINDOW; count the rest (one "N more" row at its end)."""
        self.refused += 1
        now = self.clock()
        with self._fold_lock:
            folded = self._fold_start is not None and now - self._fold_start < FOLD_WINDOW
            if folded:
                self._folded += 1
                return
        self.flush_refusals(force=True)
        with self._fold_lock:
            self._fold_start = now
            self._arm_timer()
        logger.warning("MQTT: %s refused: %s (more refusals within %.0f s are counted, not logged one by "
                       "one)", action, why, FOLD_WINDOW)
        self.service.record_quietly("unlock", "refused", source="mqtt", client="mqtt", reason=reason)

    def _arm_timer(self) -> None:
        if self._fold_timer is not None:
            self._fold_timer.cancel()
        self._fold_timer = threading.Timer(FOLD_WINDOW + 0.5, self.flush_refusals)
        self._fold_timer.daemon = True
        self._fold_timer.start()

    def flush_refusals(self, force: bool = False) -> None:
        """Audit the refusals counted since the first one as one row, once its window is over (or now)."""
        with self._fold_lock:
            if self._fold_start is None or not (force or self.clock() - self._fold_start >= FOLD_WINDOW):
                return
            count, self._folded, self._fold_start = self._folded, 0, None
        if count:
            logger.warning("MQTT: %d more unlock command(s) refused", count)
            self.service.record_quietly("unlock", "refused", source="mqtt", client="mqtt",
                                        reason=f"{count} more MQTT unlock(s) refused")

    def _lock(self) -> None:
        try:
            self.service.door.lock()
        except RelayError as err:
            logger.error("MQTT: LOCK failed: %s", err)
            self.service.record_quietly("lock", "error", source="mqtt", client="mqtt", reason=str(err))
            self.publish_state()
            return
        logger.info("MQTT: locked")
        self.service.record_quietly("lock", "accepted", source="mqtt", client="mqtt")

    def _unlock(self, action: str) -> None:
        try:  # the same path as an HTTP unlock: audited before the relay moves
            self.service.unlock(source="mqtt", client="mqtt", reason=f"MQTT {action}")
        except AuditWriteError as err:
            logger.error("MQTT: %s refused, the door stays locked: %s", action, err)
            return
        except RelayError as err:
            logger.error("MQTT: %s failed, the door stays locked: %s", action, err)
            return
        logger.info("MQTT: unlock accepted (%s)", action)


def parse_command(payload: bytes) -> tuple[str, str | None] | None:
    """``LOCK``/``UNLOCK``/``OPEN`` or ``{"action": ..., "code": ...}``; None for anything else."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if text in COMMANDS:
        return text, None
    if not text.startswith("{"):
        return None
    try:
        data: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or set(data) - {"action", "code"} or data.get("action") not in COMMANDS:
        return None
    code = data.get("code")
    if code is not None and not isinstance(code, str):
        return None
    return data["action"], code
