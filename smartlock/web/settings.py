"""The system's settings as the Settings page changes them: checked field by field, applied, then saved.

``SettingsStore.change`` validates a change (a ``SettingsError`` names the field), writes any secret it
carries to its own 0600 file, lets the ``applier`` restart the parts it concerns (smartlock.web.up_settings
in `up`) and only then saves the settings atomically as a 0600 JSON file; when the applier fails, the
old settings and secrets stay. Secrets (MQTT password, unlock code) are never part of the settings: only
whether they are set.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, ValidationError, field_validator

from smartlock.config import StrictModel
from smartlock.door.settings import DEFAULT_LOCK_DELAY, MAX_LOCK_DELAY
from smartlock.engine.settings import DEFAULT_KEEP_DAYS, DEFAULT_KEEP_UNLOCKS, DEFAULT_THRESHOLD
from smartlock.errors import ConfigError
from smartlock.fileio import atomic_write
from smartlock.integrations.settings import DOOR_NAME_PATTERN, parse_mqtt_url

logger = logging.getLogger(__name__)

TIMELINE_MAX_EVENTS = 5000  # the EventStore's default
MIN_UNLOCK_CODE = 6  # as smartlock.integrations.door.MIN_CODE (that module needs the MQTT client)
MAX_SECRET_LENGTH = 1024
CAMERA_SCHEMES = ("http", "https", "rtsp", "rtsps")
MQTT_FIELDS = ("mqtt_url", "mqtt_user", "mqtt_password_set", "mqtt_allow_unlock", "mqtt_unlock_code_set",
               "mqtt_images", "door_name")
SECRET_INPUTS = {"mqtt_password": "mqtt_password_set", "mqtt_unlock_code": "mqtt_unlock_code_set"}
# Which parts a setting restarts when it changes (`up` works it out from the command lines; this is what the
# page tells beforehand). "dashboard": applied at once, nothing restarted.
RESTARTS: dict[str, tuple[str, ...]] = {
    "threshold": ("vision",), "lock_delay": ("door",), "keep_days": ("vision",),
    "keep_unlocks": ("vision",), "timeline_max_events": ("dashboard",), "camera": ("vision",),
    "mqtt_url": ("door", "vision"), "mqtt_user": ("door", "vision"), "mqtt_password": ("door", "vision"),
    "mqtt_allow_unlock": ("door",), "mqtt_unlock_code": ("door",), "mqtt_images": ("vision",),
    "door_name": ("door", "vision"), "liveness": ("vision",), "liveness_still_frame": ("vision",),
}
# how the page names the processes of `up` ("vision" holds the camera, the recognition API and the engine)
PART_LABELS = {"vision": "camera, recognition and engine", "door": "door"}
LABELS = {
    "threshold": "threshold", "lock_delay": "lock delay", "keep_days": "days unlock frames are kept",
    "keep_unlocks": "unlock frames kept", "timeline_max_events": "timeline rows kept",
    "camera": "camera source",
    "mqtt_url": "MQTT broker", "mqtt_user": "MQTT user", "mqtt_password": "MQTT password",
    "mqtt_allow_unlock": "unlock from MQTT", "mqtt_unlock_code": "MQTT unlock code",
    "mqtt_images": "MQTT images", "door_name": "door name", "liveness": "liveness check",
    "liveness_still_frame": "refuse a face held still between two edges",
}


class SettingsError(ConfigError):
    """A refused setting: the message for the page and the field it belongs next to (None: the form)."""

    def __init__(self, message: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


class ApplyFailed(Exception):
    """The parts did not all come up with the new settings; the old ones are back in place."""

    def __init__(self, message: str, failed: str | None, restarted: list[str]) -> None:
        super().__init__(message)
        self.failed = failed
        self.restarted = restarted


class SystemSettings(StrictModel):
    """What the Settings page changes; `up` turns it into the children's command lines."""

    # Stricter than the engine's [0, 1]: from a browser, 0 (anyone enrolled-looking) and 1 (nobody) are
    # mistakes, not settings.
    threshold: float = Field(DEFAULT_THRESHOLD, gt=0.0, lt=1.0,
                             description="confidence a face needs for the engine to unlock")
    lock_delay: float = Field(DEFAULT_LOCK_DELAY, gt=0, le=MAX_LOCK_DELAY,
                              description="how long an unlock keeps the door open, in seconds")
    keep_days: float = Field(DEFAULT_KEEP_DAYS, gt=0, le=3650, description="days unlock frames are kept")
    keep_unlocks: int = Field(DEFAULT_KEEP_UNLOCKS, ge=1, le=1_000_000, description="unlock frames kept")
    timeline_max_events: int = Field(TIMELINE_MAX_EVENTS, ge=100, le=1_000_000,
                                     description="timeline rows the dashboard keeps (the oldest go first)")
    camera: str | None = Field(None, max_length=1000, description="camera source (None: automatic)")
    mqtt_url: str | None = Field(None, max_length=500, description="mqtt[s]://host[:port] (None: off)")
    mqtt_user: str | None = Field(None, max_length=128)
    mqtt_password_set: bool = False
    mqtt_allow_unlock: bool = False
    mqtt_unlock_code_set: bool = False
    mqtt_images: bool = False
    door_name: str = Field("door", max_length=64)
    liveness: bool = Field(True, description="unlock only for faces judged live (refuse photos and screens)")
    liveness_still_frame: bool = Field(
        True, description="refuse a face held still between two straight edges (a screen or card on a "
        "stand); off where the background frames the head of a person standing at the camera")

    @field_validator("camera")
    @classmethod
    def _camera(cls, value: str | None) -> str | None:
        return check_camera(value)

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if not value:
            return None
        parse_mqtt_url(value)  # ValueError with the reason
        if urlsplit(value).username is not None:
            raise ValueError("give the user in the MQTT user field, not in the URL")
        return value.rstrip("/")

    @field_validator("mqtt_user")
    @classmethod
    def _mqtt_user(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if not value:
            return None
        if not re.fullmatch(r"[A-Za-z0-9._~-]{1,128}", value):
            raise ValueError("letters, digits and . _ ~ - only")
        return value

    @field_validator("door_name")
    @classmethod
    def _door_name(cls, value: str) -> str:
        if not re.fullmatch(DOOR_NAME_PATTERN, value):
            raise ValueError("1-64 lower-case letters, digits or _")
        return value

    @property
    def broker_url(self) -> str | None:
        """The --mqtt-url: the broker with the user in it."""
        if self.mqtt_url is None:
            return None
        if self.mqtt_user is None:
            return self.mqtt_url
        scheme, _, rest = self.mqtt_url.partition("://")
        return f"{scheme}://{self.mqtt_user}@{rest}"


DashboardSettings = SystemSettings  # the name of the threshold-only settings before the Settings page


SECRET_QUERY_KEYS = {"password", "passwd", "pwd", "pass", "token", "key", "apikey", "api_key", "secret",
                     "auth", "access_token", "sig", "signature"}


def check_camera(value: str | None) -> str | None:
    """A camera source as the camera takes it: a device index, /dev/videoN, picamera, an http(s)/rtsp URL
    (without a password: it would show on a command line) or the absolute path of a file or folder."""
    value = (value or "").strip()
    if not value:
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("control characters are not allowed")
    if value.isdigit():
        if int(value) > 63:
            raise ValueError("a device index is 0 to 63")
        return str(int(value))
    if value == "picamera":
        return value
    if value.startswith("/dev/video"):
        if not re.fullmatch(r"/dev/video\d{1,2}", value) or not Path(value).exists():
            raise ValueError(f"{value}: no such camera device")
        return value
    if "://" in value:
        parts = urlsplit(value)
        if parts.scheme not in CAMERA_SCHEMES or not parts.hostname:
            raise ValueError(f"a stream URL starts with {', '.join(s + '://' for s in CAMERA_SCHEMES)} "
                             "and names a host")
        if parts.password is not None:
            raise ValueError("no password in the URL: it would show on the camera's command line")
        secret = [key for key, _ in parse_qsl(parts.query, keep_blank_values=True)
                  if key.lower() in SECRET_QUERY_KEYS]
        if secret:
            raise ValueError(f"no {secret[0]}= in the URL: it would show on the camera's command line, in "
                             "the settings and in the audit; give the camera a URL without it")
        try:
            parts.port  # noqa: B018 - raises for a bad port
        except ValueError as err:
            raise ValueError(f"bad port: {err}") from None
        return value
    path = Path(value)
    if not path.is_absolute():
        raise ValueError("give a device index (0), a stream URL or the full path of a video file or folder")
    try:
        found = path.exists()
        resolved = path.resolve()
    except (OSError, RuntimeError) as err:  # a name too long, a symlink loop
        raise ValueError(f"{value}: {getattr(err, 'strerror', None) or err}") from None
    if not found:
        raise ValueError(f"{value}: no such file or folder")
    return str(resolved)


def check_consistent(settings: SystemSettings) -> None:
    """SettingsError (with its field) when the MQTT settings do not fit together."""
    if settings.mqtt_user is not None and settings.mqtt_url is None:
        raise SettingsError("a user needs a broker URL", "mqtt_url")
    if settings.mqtt_password_set and settings.mqtt_url is not None and settings.mqtt_user is None:
        raise SettingsError("a password needs a user", "mqtt_user")
    if settings.mqtt_allow_unlock and not settings.mqtt_unlock_code_set:
        raise SettingsError(f"unlocking from MQTT needs an unlock code (at least {MIN_UNLOCK_CODE} "
                            "characters; Home Assistant sends it with every UNLOCK)", "mqtt_unlock_code")


def check_secret(name: str, value: object) -> str:
    """A secret from the page ("" removes it)."""
    if not isinstance(value, str):
        raise SettingsError("must be text", name)
    if value == "":
        return value
    if value != value.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise SettingsError("no spaces at either end and no control characters", name)
    if len(value) > MAX_SECRET_LENGTH:
        raise SettingsError(f"at most {MAX_SECRET_LENGTH} characters", name)
    if name == "mqtt_unlock_code" and len(value) < MIN_UNLOCK_CODE:
        raise SettingsError(f"at least {MIN_UNLOCK_CODE} characters", name)
    return value


def validated(data: Mapping[str, Any], strict: bool = True) -> SystemSettings:
    """The settings, or a SettingsError naming the first bad field."""
    try:
        return SystemSettings.model_validate(dict(data), strict=strict)
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first.get("loc") else None
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        message = message.replace("Input should be", "must be")
        if first.get("type") == "extra_forbidden":
            raise SettingsError(f"unknown setting {field}", field, 400) from None
        raise SettingsError(f"{LABELS.get(field or '', field)}: {message}", field) from None


# applier(old, new, secrets changed) -> the parts restarted (or applied live); raises ApplyFailed
Applier = Callable[[SystemSettings, SystemSettings, frozenset[str]], list[str]]


@dataclass(frozen=True)
class Change:
    settings: SystemSettings
    restarted: list[str]


class SettingsStore:
    """The settings saved by the page (``saved``) and those the parts run with (``current``: at start the
    saved ones, with `up`'s command-line flags on top)."""

    def __init__(self, path: Path, defaults: SystemSettings | None = None,
                 secrets_dir: Path | None = None) -> None:
        self.path = Path(path)
        self.secrets_dir = Path(secrets_dir) if secrets_dir is not None else self.path.parent
        self._lock = threading.Lock()  # one change at a time
        self._listeners: list[Callable[[SystemSettings, SystemSettings], None]] = []
        self.saved = self._read() or defaults or SystemSettings()
        self._current = self.saved
        self.from_command_line: dict[str, str] = {}  # field -> the flag of `up` that set it at start
        self.applier: Applier | None = None

    @property
    def current(self) -> SystemSettings:
        return self._current

    def secret_path(self, name: str) -> Path:
        """The 0600 file of secret ``name`` (mqtt_password, mqtt_unlock_code)."""
        return self.secrets_dir / name.replace("_", "-")

    def start_with(self, current: SystemSettings, from_command_line: Mapping[str, str]) -> None:
        """What the parts start with (saved settings, command-line flags on top)."""
        self._current = current
        self.from_command_line = dict(from_command_line)

    def subscribe(self, listener: Callable[[SystemSettings, SystemSettings], None]) -> None:
        """``listener(old, new)`` runs after every applied and saved change."""
        self._listeners.append(listener)

    def update(self, **changes: object) -> SystemSettings:
        return self.change(changes).settings

    def change(self, changes: object) -> Change:
        """Validate, apply (the applier restarts what the change concerns), save; see the module doc."""
        if not isinstance(changes, Mapping) or not changes:
            raise SettingsError("expected a JSON object of settings", None, 400)
        for name in changes:
            if name in SECRET_INPUTS.values():
                raise SettingsError(f"{name} is set by giving {name.removesuffix('_set')}", name, 400)
            if name not in SystemSettings.model_fields and name not in SECRET_INPUTS:
                raise SettingsError(f"unknown setting {name}", str(name), 400)
        if not self._lock.acquire(blocking=False):
            raise SettingsError("another change is being applied: try again in a moment", None, 409)
        try:
            old, result = self._current, self._change(changes)
        finally:
            self._lock.release()
        if result.settings != old:
            for listener in self._listeners:
                listener(old, result.settings)
        return result

    def _change(self, changes: Mapping[str, object]) -> Change:
        old = self._current
        plain = {name: value for name, value in changes.items() if name in SystemSettings.model_fields}
        secrets = {name: check_secret(name, changes[name]) for name in SECRET_INPUTS if name in changes}
        for name, value in secrets.items():
            plain[SECRET_INPUTS[name]] = value != ""
        # each given field checked alone (a value set by a command-line flag is not checked again)
        checked = validated(plain)
        new = old.model_copy(update={name: getattr(checked, name) for name in plain})
        check_consistent(new)
        touched = set(plain)
        if touched & set(MQTT_FIELDS):
            touched |= set(MQTT_FIELDS)  # the saved MQTT settings stay consistent as a whole
        saved = self.saved.model_copy(update={name: getattr(new, name) for name in touched})
        if new == old and not secrets:
            return Change(new, [])
        backups = self._write_secrets(secrets)
        try:
            restarted = self.applier(old, new, frozenset(secrets)) if self.applier is not None else []
        except BaseException:
            self._restore_secrets(backups)
            raise
        atomic_write(self.path, saved.model_dump_json(indent=2).encode("utf-8"), mode=0o600)
        self.saved, self._current = saved, new
        logger.info("settings changed: %s; restarted: %s", ", ".join(sorted(touched)) or "secrets",
                    ", ".join(restarted) or "nothing")
        return Change(new, restarted)

    def _write_secrets(self, secrets: Mapping[str, str]) -> dict[Path, bytes | None]:
        from smartlock.service.secrets import write_secret

        backups: dict[Path, bytes | None] = {}
        for name, value in secrets.items():
            path = self.secret_path(name)
            try:
                backups[path] = path.read_bytes()
            except FileNotFoundError:
                backups[path] = None
            if value:
                write_secret(path, value)
            else:
                path.unlink(missing_ok=True)
        return backups

    def _restore_secrets(self, backups: Mapping[Path, bytes | None]) -> None:
        for path, data in backups.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, data, mode=0o600)

    def _read(self) -> SystemSettings | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if data.get("camera") is not None:
                try:
                    check_camera(str(data["camera"]))
                except ValueError as err:  # a file since moved: the rest of the settings still count
                    logger.warning("the camera source saved on the Settings page is not usable any more "
                                   "(%s): using the automatic choice", err)
                    data["camera"] = None
            settings = validated(data, strict=False)
            check_consistent(settings)
            return settings
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as err:
            logger.warning("ignoring unreadable settings file %s: %s", self.path, err)
            return None
