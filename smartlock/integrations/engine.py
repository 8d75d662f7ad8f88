"""The engine on MQTT: what it sees as Home Assistant events, the "face unlock" switch it obeys, and (only
with --mqtt-images) the last unlock frame.

The switch's state lives retained on the broker (``smartlock/<door>/face_unlock``), so it survives restarts
of the engine: after (re)connecting the engine reads it back before it publishes its own. It is also kept
in a local file, so an engine restarted while the broker is unreachable keeps face unlock off if it was
off. With neither (first start, no broker) face unlock is on, as without MQTT.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from smartlock.fileio import atomic_write
from smartlock.integrations.discovery import engine_configs
from smartlock.integrations.limits import Clock, TokenBucket
from smartlock.integrations.mqtt import MqttLink
from smartlock.integrations.settings import MqttSettings

logger = logging.getLogger(__name__)

SWITCH_RATE, SWITCH_PER = 10, 10.0  # switch commands per seconds; the excess is dropped (OFF while ON never)
EVENT_NAMES = {"unlocked": "unlocked", "recognised": "recognised", "refused-unknown": "refused_unknown"}


class EngineMqtt:
    """An EventSink (emit/close) that publishes to MQTT, and the face-unlock switch (``face_unlock()``)."""

    def __init__(self, settings: MqttSettings, link: MqttLink | None = None,
                 state_file: Path | None = None, *, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self.link = link or MqttLink(settings, "engine", clock=clock)
        self.bucket = TokenBucket(SWITCH_RATE, SWITCH_PER, clock)
        self.topics = self.link.topics
        self._state_file = state_file
        self._enabled = self._saved_state()
        self._known = False  # a state was read back from the broker or set by a command
        self._lock = threading.Lock()
        self.link.subscribe(self.topics.face_unlock, self._switch_state)
        self.link.subscribe(self.topics.face_unlock_command, self._switch_command)
        self._hello_topic = f"{self.topics.base}/engine/hello"
        self._nonce = b""
        self.link.subscribe(self._hello_topic, self._hello)
        self.link.on_connect(self._announce)

    def start(self) -> EngineMqtt:
        self.link.start()
        return self

    def close(self) -> None:
        self.link.stop()

    # -- the switch --------------------------------------------------------------------------------

    def face_unlock(self) -> bool:
        """Whether the engine may unlock (the switch); never waits for the broker."""
        return self._enabled

    def _set(self, enabled: bool, why: str) -> None:
        with self._lock:
            changed = enabled != self._enabled or not self._known
            self._enabled, self._known = enabled, True
        if changed:
            logger.warning("face unlock %s (%s)%s", "ON" if enabled else "OFF", why,
                           "" if enabled else ": faces still recognised and reported, the door stays shut")
            self._save_state(enabled)

    def _saved_state(self) -> bool:
        if self._state_file is None:
            return True
        try:
            saved = self._state_file.read_text(encoding="utf-8").strip().upper()
        except FileNotFoundError:
            return True
        except OSError as err:  # unreadable: stay shut until the broker says otherwise
            logger.warning("cannot read the face-unlock state %s (%s): face unlock OFF",
                           self._state_file, err)
            return False
        if saved not in ("ON", "OFF"):
            logger.warning("malformed face-unlock state in %s: face unlock OFF", self._state_file)
            return False
        if saved == "OFF":
            logger.warning("face unlock OFF (saved in %s) until the broker says otherwise", self._state_file)
        return saved == "ON"

    def _save_state(self, enabled: bool) -> None:
        if self._state_file is None:
            return
        try:
            atomic_write(self._state_file, b"ON\n" if enabled else b"OFF\n", mode=0o600)
        except OSError as err:  # a full disk: the switch still works, it is just not remembered
            logger.warning("cannot save the face-unlock state to %s: %s", self._state_file, err)

    def _switch_state(self, topic: str, payload: bytes, retained: bool) -> None:
        value = payload.strip().upper()
        if value not in (b"ON", b"OFF"):
            logger.warning("MQTT: malformed face-unlock state on %s ignored: %r", topic, payload[:64])
            return
        self._set(value == b"ON", "state on the broker")

    def _switch_command(self, topic: str, payload: bytes, retained: bool) -> None:
        if retained:
            logger.warning("MQTT: retained command on %s ignored", topic)
            return
        value = payload.strip().upper()
        urgent = value == b"OFF" and self._enabled  # turning face unlock off is never rate-limited
        if not urgent and not self.bucket.take():
            if self.bucket.in_burst == 1:
                logger.warning("MQTT: face-unlock command flood on %s: more than %d in %.0f s, the rest "
                               "dropped until it stops", topic, SWITCH_RATE, SWITCH_PER)
            return
        ended = self.bucket.end_burst()
        if ended:
            logger.warning("MQTT: face-unlock command flood over: %d command(s) dropped", ended)
        if value not in (b"ON", b"OFF"):
            logger.warning("MQTT: malformed face-unlock command on %s ignored: %r", topic, payload[:64])
            return
        self._set(value == b"ON", "MQTT command")
        self._publish_switch()

    def _hello(self, topic: str, payload: bytes, retained: bool) -> None:
        """Our own hello (sent after subscribing) comes back after the retained switch state, if any, was
        delivered: publish ours when nothing was retained (and again after a broker restart lost it)."""
        if retained or not self._nonce or not secrets.compare_digest(payload, self._nonce):
            return
        if not self._known:
            self._set(self._enabled, "nothing retained on the broker")
        self._publish_switch()

    def _publish_switch(self) -> None:
        self.link.publish(self.topics.face_unlock, "ON" if self._enabled else "OFF", retain=True)

    def _announce(self) -> None:
        self._nonce = secrets.token_hex(8).encode()
        self.link.publish(self._hello_topic, self._nonce)
        for topic, config in engine_configs(self.settings.door_name, images=self.settings.mqtt_images):
            self.link.publish(topic, json.dumps(config), retain=True)

    # -- what the engine sees ------------------------------------------------------------------------

    def emit(self, event: dict[str, Any]) -> None:
        """An engine event as a Home Assistant event (``event_type`` plus attributes); never blocks."""
        kind = EVENT_NAMES.get(str(event.get("event")))
        if kind is None:
            return
        person = event.get("person")
        confidence = event.get("confidence", event.get("best_confidence"))
        payload = {"event_type": kind, "person": person, "confidence": confidence,
                   "track": event.get("track"), "door": self.settings.door_name, "time": event.get("time")}
        if kind == "refused_unknown":
            payload["faces"] = event.get("faces")
        self.link.publish(self.topics.event, json.dumps(payload))

    def unlock_frame(self, image_bgr: np.ndarray) -> None:
        """The last unlock frame as a retained JPEG, only with --mqtt-images (faces are personal data)."""
        if not self.settings.mqtt_images:
            return
        from smartlock.engine.vision import encode_jpeg_bgr

        try:
            self.link.publish(self.topics.image, encode_jpeg_bgr(image_bgr), retain=True)
        except Exception as err:  # the door is open already: an image is never worth an error
            logger.warning("MQTT: unlock frame not published: %s", err)
