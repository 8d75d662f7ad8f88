"""MqttSettings: the --mqtt-* flags and --door-name, a mixin for the door, engine and `up` settings models."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from smartlock.config import PartSettings

DOOR_NAME_PATTERN = r"^[a-z0-9_]{1,64}$"  # its own slug: no two names share topics or unique ids
MQTT_FLAGS = ("mqtt_url", "mqtt_ca_file", "mqtt_password_file", "mqtt_allow_unlock", "mqtt_unlock_code_file",
              "mqtt_images", "door_name")


@dataclass(frozen=True)
class Broker:
    """Where the broker is: from ``mqtt://[user@]host[:port]`` or ``mqtts://...``."""

    host: str
    port: int
    username: str | None
    tls: bool


def parse_mqtt_url(url: str) -> Broker:
    """The broker of an --mqtt-url; ValueError for anything else (a password in the URL above all)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError("must start with mqtt:// or mqtts://")
    if parts.password is not None:
        raise ValueError("no password in the URL: give it in a 0600 file with --mqtt-password-file")
    if not parts.hostname:
        raise ValueError("names no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be mqtt[s]://[user@]host[:port] only")
    try:
        port = parts.port
    except ValueError as err:
        raise ValueError(f"bad port: {err}") from None
    tls = parts.scheme == "mqtts"
    return Broker(parts.hostname, port or (8883 if tls else 1883), parts.username or None, tls)


class MqttSettings(PartSettings):
    """The MQTT broker and what Home Assistant may do through it (every field off by default)."""

    mqtt_url: str | None = Field(
        None, max_length=500, json_schema_extra={"metavar": "URL"},
        description="publish to this MQTT broker (Home Assistant discovery): mqtt://[user@]host[:port] "
                    "or mqtts://...",
    )
    mqtt_ca_file: Path | None = Field(None, description="CA certificate (PEM) of an mqtts:// broker")
    mqtt_password_file: Path | None = Field(None, description="the MQTT user's password, in a 0600 file")
    mqtt_allow_unlock: bool = Field(
        False, description="obey UNLOCK/OPEN from MQTT, with the code of --mqtt-unlock-code-file (needs it)",
    )
    mqtt_unlock_code_file: Path | None = Field(
        None,
        description="0600 file holding a code (6+ characters) Home Assistant must send with UNLOCK/OPEN",
    )
    mqtt_images: bool = Field(
        False, description="publish the last unlock frame as a Home Assistant image (faces: personal data)",
    )
    door_name: str = Field("door", max_length=64,
                           description="this door's name in MQTT topics and Home Assistant: lower-case "
                                       "letters, digits and _")

    @field_validator("door_name")
    @classmethod
    def _door_name(cls, value: str) -> str:
        if not re.fullmatch(DOOR_NAME_PATTERN, value):
            suggestion = slug(value)[:64].strip("_") or "door"
            raise ValueError(f"{value!r} must be 1-64 lower-case letters, digits or _ (names that differ "
                             f"only by case or -/_ would share topics in Home Assistant): e.g. "
                             f"{suggestion!r}")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            parse_mqtt_url(value)
        return value

    @model_validator(mode="after")
    def _mqtt_consistent(self) -> Self:
        if self.mqtt_allow_unlock and self.mqtt_unlock_code_file is None:
            raise ValueError("--mqtt-allow-unlock needs --mqtt-unlock-code-file: without a code anyone who "
                             "can publish to the broker opens the door; put a code of 6+ characters in a "
                             "0600 file (smartlock reads it) and give the same code in Home Assistant")
        if self.mqtt_url is None:
            return self
        broker = parse_mqtt_url(self.mqtt_url)
        if self.mqtt_ca_file is not None and not broker.tls:
            raise ValueError("--mqtt-ca-file needs an mqtts:// --mqtt-url")
        if self.mqtt_password_file is not None and broker.username is None:
            raise ValueError("--mqtt-password-file needs a user in --mqtt-url (mqtt://user@host)")
        return self

    @property
    def broker(self) -> Broker | None:
        return None if self.mqtt_url is None else parse_mqtt_url(self.mqtt_url)

    def mqtt_values(self) -> dict[str, object]:
        """These fields as keyword arguments for another part's settings model (`up` -> children)."""
        return {name: getattr(self, name) for name in MQTT_FLAGS}


def slug(name: str) -> str:
    """A door name as it appears in unique ids (lower case, dashes as underscores)."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower())
