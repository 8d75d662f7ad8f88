"""Topics and Home Assistant MQTT discovery payloads of one door (retained under ``homeassistant/``).

One device, "smartlock <door name>". The door publishes the lock entity; the engine the event entity, the
"face unlock" switch and (only with --mqtt-images) the image entity. Each part has its own availability
topic, set to ``offline`` by its last will.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smartlock.integrations.settings import slug

DISCOVERY_PREFIX = "homeassistant"
HA_STATUS_TOPIC = f"{DISCOVERY_PREFIX}/status"
EVENT_TYPES = ("unlocked", "recognised", "refused_unknown")
ONLINE, OFFLINE = "online", "offline"


@dataclass(frozen=True)
class Topics:
    """The plain topics of one door: ``smartlock/<door>/...``."""

    door: str

    @property
    def base(self) -> str:
        return f"smartlock/{self.door}"

    @property
    def state(self) -> str:  # JSON {"state": "LOCKED", ...}, retained
        return f"{self.base}/state"

    @property
    def command(self) -> str:  # LOCK / UNLOCK / OPEN, or JSON {"action": ..., "code": ...}
        return f"{self.base}/set"

    @property
    def event(self) -> str:  # JSON {"event_type": ..., "person": ..., ...}
        return f"{self.base}/event"

    @property
    def face_unlock(self) -> str:  # ON / OFF, retained (survives restarts)
        return f"{self.base}/face_unlock"

    @property
    def face_unlock_command(self) -> str:
        return f"{self.base}/face_unlock/set"

    @property
    def image(self) -> str:  # JPEG bytes of the last unlock frame, retained
        return f"{self.base}/image"

    def availability(self, part: str) -> str:  # online / offline (last will), retained
        return f"{self.base}/{part}/availability"


def device(door: str) -> dict[str, Any]:
    return {"identifiers": [f"smartlock_{slug(door)}"], "name": f"smartlock {door}",
            "manufacturer": "smartlock", "model": "face-recognition door lock"}


def config_topic(component: str, door: str, object_id: str) -> str:
    return f"{DISCOVERY_PREFIX}/{component}/smartlock_{slug(door)}/{object_id}/config"


def _common(door: str, part: str, object_id: str, name: str) -> dict[str, Any]:
    topics = Topics(door)
    return {"name": name, "unique_id": f"smartlock_{slug(door)}_{object_id}",
            "object_id": f"smartlock_{slug(door)}_{object_id}", "device": device(door),
            "availability_topic": topics.availability(part),
            "payload_available": ONLINE, "payload_not_available": OFFLINE}


def lock_config(door: str, *, allow_unlock: bool, with_code: bool) -> tuple[str, dict[str, Any]]:
    """The lock entity (published by the door). Without ``allow_unlock`` Home Assistant still shows the
    unlock button, but the door refuses it (and the log says why)."""
    topics = Topics(door)
    config = {
        **_common(door, "door", "lock", "Lock"),
        "command_topic": topics.command, "state_topic": topics.state,
        "value_template": "{{ value_json.state }}",
        "payload_lock": "LOCK", "payload_unlock": "UNLOCK",
        "state_locked": "LOCKED", "state_unlocked": "UNLOCKED", "state_jammed": "JAMMED",
        "optimistic": False, "qos": 1, "retain": False,
    }
    if allow_unlock:
        config["payload_open"] = "OPEN"
    if with_code:
        config["code_format"] = r"^\S{6,64}$"
        # tojson: a code with " or \\ still makes valid JSON (and cannot add keys)
        config["command_template"] = '{"action": {{ value | tojson }}, "code": {{ code | tojson }}}'
    return config_topic("lock", door, "lock"), config


def engine_configs(door: str, *, images: bool) -> list[tuple[str, dict[str, Any]]]:
    """The event entity, the face-unlock switch and, with ``images``, the image entity (the engine's)."""
    topics = Topics(door)
    configs = [
        (config_topic("event", door, "face"), {
            **_common(door, "engine", "face", "Face"),
            "state_topic": topics.event, "event_types": list(EVENT_TYPES), "qos": 1,
        }),
        (config_topic("switch", door, "face_unlock"), {
            **_common(door, "engine", "face_unlock", "Face unlock"),
            "command_topic": topics.face_unlock_command, "state_topic": topics.face_unlock,
            "payload_on": "ON", "payload_off": "OFF", "state_on": "ON", "state_off": "OFF",
            "optimistic": False, "qos": 1, "retain": False, "icon": "mdi:face-recognition",
        }),
    ]
    if images:
        configs.append((config_topic("image", door, "last_unlock"), {
            **_common(door, "engine", "last_unlock", "Last unlock"),
            "image_topic": topics.image, "content_type": "image/jpeg",
        }))
    return configs
