"""The door on MQTT: its lock state (retained, on every change) and the lock commands Home Assistant sends.

Commands go through DoorService (audited with source "mqtt", the unlock before the relay moves). LOCK is
always obeyed; UNLOCK and OPEN only with --mqtt-allow-unlock (and the code when --mqtt-unlock-code-file is
given). A retained command, a malformed, oversized or unknown payload is ignored with a log line.
"""

from __future__ import annotations

import hmac
import json
import logging
from datetime import UTC, datetime
from typing import Any

from smartlock.door.events import AuditWriteError
from smartlock.door.service import DoorService
from smartlock.errors import RelayError
from smartlock.integrations.discovery import lock_config
from smartlock.integrations.mqtt import MqttLink
from smartlock.integrations.settings import MqttSettings
from smartlock.service import read_secret

logger = logging.getLogger(__name__)

COMMANDS = ("LOCK", "UNLOCK", "OPEN")


class DoorMqtt:
    """Publishes the door's state and discovery, and obeys lock commands."""

    def __init__(self, service: DoorService, settings: MqttSettings, link: MqttLink | None = None) -> None:
        self.service = service
        self.settings = settings
        self.link = link or MqttLink(settings, "door")
        self.topics = self.link.topics
        self._code = (None if settings.mqtt_unlock_code_file is None
                      else read_secret(settings.mqtt_unlock_code_file, "MQTT unlock code file"))
        self.link.subscribe(self.topics.command, self._command)
        self.link.on_connect(self._announce)
        service.door.add_listener(self.publish_state)

    def start(self) -> DoorMqtt:
        self.link.start()
        return self

    def stop(self) -> None:
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
        if retained:
            logger.warning("MQTT: retained command on %s ignored (a retained command replays on every "
                           "reconnect)", topic)
            return
        parsed = parse_command(payload)
        if parsed is None:
            logger.warning("MQTT: malformed command on %s ignored: %r", topic, payload[:64])
            return
        action, code = parsed
        if action == "LOCK":
            self._lock()
        elif not self.settings.mqtt_allow_unlock:
            logger.warning("MQTT: %s refused: this door takes no unlocks from MQTT (--mqtt-allow-unlock)",
                           action)
            self.service.record_quietly("unlock", "refused", source="mqtt", client="mqtt",
                                        reason="MQTT unlock not allowed")
        elif self._code is not None and not hmac.compare_digest((code or "").encode(), self._code.encode()):
            logger.warning("MQTT: %s refused: wrong or missing code", action)
            self.service.record_quietly("unlock", "refused", source="mqtt", client="mqtt",
                                        reason="wrong code")
        else:
            self._unlock(action)

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
