"""How `smartlock up` starts with the Settings page's settings and applies a change by restarting only the
parts whose command line it changes (through the supervisor, with the old settings back when one fails).

At start the saved settings count, except those `up` was given as flags on its command line (the flag wins;
the page says which). The children's command lines are made in one place, ``Plan.commands``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from smartlock.errors import ConfigError
from smartlock.integrations.settings import MQTT_FLAGS
from smartlock.web.settings import (
    MQTT_FIELDS,
    SECRET_INPUTS,
    ApplyFailed,
    SettingsError,
    SettingsStore,
    SystemSettings,
)
from smartlock.web.supervisor import Supervisor
from smartlock.web.up_plan import EngineTuning, Plan, UpSettings, camera_source

logger = logging.getLogger("smartlock.up")

# `up`'s on|off flags that are checkboxes on the page (True: "on")
ON_OFF_FIELDS = ("liveness", "liveness_still_frame")
SecretFiles = dict[str, Path | None]  # mqtt_password / mqtt_unlock_code -> the 0600 file the parts read
FLAG_FIELDS = {"--lock-delay": "lock_delay", "--camera": "camera", "--mqtt-url": "mqtt_url",
               "--mqtt-password-file": "mqtt_password", "--mqtt-unlock-code-file": "mqtt_unlock_code",
               "--mqtt-allow-unlock": "mqtt_allow_unlock", "--mqtt-ca-file": "mqtt_url",
               "--door-name": "door_name", "--threshold": "threshold", "--keep-days": "keep_days",
               "--keep-unlocks": "keep_unlocks", "--max-confidence": "threshold", "--liveness": "liveness",
               "--liveness-still-frame": "liveness_still_frame"}


def command_line_fields(options: UpSettings) -> set[str]:
    """The fields of ``options`` given as flags. From argparse every field is set (given or not), so
    there a flag counts as given when its value differs from the default."""
    fields = set(options.model_fields_set)
    if fields != set(UpSettings.model_fields):
        return fields
    return {name for name in fields
            if getattr(options, name) != UpSettings.model_fields[name].get_default(call_default_factory=True)}


def start_settings(saved: SystemSettings, options: UpSettings,
                   given: set[str]) -> tuple[SystemSettings, dict[str, str], SecretFiles]:
    """(what the parts start with, field -> the flag that set it, the MQTT secret files of the flags)."""
    values: dict[str, Any] = {}
    flags: dict[str, str] = {}
    files: SecretFiles = {}
    if "lock_delay" in given:
        values["lock_delay"] = options.lock_delay
        flags["lock_delay"] = f"--lock-delay {options.lock_delay:g}"
    if "camera" in given and options.camera is not None:
        values["camera"] = camera_source(options.camera)
        flags["camera"] = "--camera"
    for name in ON_OFF_FIELDS:  # in order: the page lists the flags as they come
        if name in given:
            values[name] = getattr(options, name) == "on"
            flags[name] = f"--{name.replace('_', '-')} {getattr(options, name)}"
    if given & set(MQTT_FLAGS):  # the MQTT settings come from the command line as a whole
        url, user = split_user(options.mqtt_url)
        values.update(mqtt_url=url, mqtt_user=user, mqtt_password_set=options.mqtt_password_file is not None,
                      mqtt_allow_unlock=options.mqtt_allow_unlock, mqtt_images=options.mqtt_images,
                      mqtt_unlock_code_set=options.mqtt_unlock_code_file is not None,
                      door_name=options.door_name)
        files = {"mqtt_password": options.mqtt_password_file,
                 "mqtt_unlock_code": options.mqtt_unlock_code_file}
        for name in ("mqtt_url", "mqtt_user", "mqtt_allow_unlock", "mqtt_images", "door_name"):
            flags[name] = "--mqtt-* / --door-name"
        flags["mqtt_password"] = flags["mqtt_unlock_code"] = "--mqtt-* / --door-name"
    return saved.model_copy(update=values), flags, files


def split_user(url: str | None) -> tuple[str | None, str | None]:
    """``mqtt://user@host:1883`` -> (``mqtt://host:1883``, ``user``)."""
    if url is None:
        return None, None
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}", parts.username or None


def options_for(base: UpSettings, settings: SystemSettings, files: SecretFiles) -> UpSettings:
    """`up`'s settings with the page's on top (ConfigError naming the flag when they do not fit)."""
    values = {name: getattr(base, name) for name in UpSettings.model_fields}
    values.update(
        lock_delay=settings.lock_delay, camera=settings.camera, mqtt_url=settings.broker_url,
        mqtt_password_file=files.get("mqtt_password"), mqtt_allow_unlock=settings.mqtt_allow_unlock,
        mqtt_unlock_code_file=files.get("mqtt_unlock_code"), mqtt_images=settings.mqtt_images,
        door_name=settings.door_name,
        **{name: "on" if getattr(settings, name) else "off" for name in ON_OFF_FIELDS},
    )
    if settings.mqtt_url is None:
        values.update(mqtt_ca_file=None, mqtt_password_file=None, mqtt_unlock_code_file=None,
                      mqtt_allow_unlock=False)
    return UpSettings.validated(**values)


def secret_files(settings: SystemSettings, current: SecretFiles, store: SettingsStore,
                 changed: frozenset[str] = frozenset()) -> SecretFiles:
    """The secret files the parts read with ``settings``: a flag's file until the page gives a new secret,
    then the page's own file (``store.secret_path``)."""
    files: SecretFiles = {}
    for name, flag in SECRET_INPUTS.items():
        if not getattr(settings, flag):
            files[name] = None
        elif name not in changed and current.get(name) is not None:
            files[name] = current[name]
        else:
            files[name] = store.secret_path(name)
    return files


def tuning(settings: SystemSettings) -> EngineTuning:
    return EngineTuning(settings.threshold, settings.keep_days, settings.keep_unlocks)


def field_of(message: str) -> str | None:
    """The page's field a child's refusal (naming a flag) belongs to."""
    for flag in re.findall(r"--[a-z-]+", message):
        if flag in FLAG_FIELDS:
            return FLAG_FIELDS[flag]
    return None


class Applier:
    """Restarts the parts a change concerns (``SettingsStore.applier``); see the module docstring."""

    def __init__(self, plan: Plan, base: UpSettings, supervisor: Supervisor, store: SettingsStore,
                 files: SecretFiles, lock_door: Callable[[], None],
                 apply_live: Callable[[SystemSettings], None] | None = None) -> None:
        self.plan = plan
        self.base = base
        self.supervisor = supervisor
        self.store = store
        self.files = {name: files.get(name) for name in SECRET_INPUTS}
        self.lock_door = lock_door
        self.apply_live = apply_live

    def files_for(self, settings: SystemSettings, changed: frozenset[str]) -> SecretFiles:
        return secret_files(settings, self.files, self.store, changed)

    def adopt_secrets(self, files: SecretFiles) -> None:
        """After the page changed the MQTT settings (they are then saved as a whole): copy a secret still
        read from a flag's file into the page's own file, so the next start without the flags finds it."""
        from smartlock.service.secrets import read_secret, write_secret

        for name, path in files.items():
            own = self.store.secret_path(name)
            if path is not None and path != own:
                try:
                    write_secret(own, read_secret(path))
                except (ConfigError, OSError) as err:
                    logger.warning("could not keep the MQTT secret of %s for the next start: %s", path, err)
                    continue
        self.files = files

    def commands(self, settings: SystemSettings, files: SecretFiles) -> dict[str, list[str]]:
        """Every child's command line with ``settings`` (SettingsError naming the field when a part's own
        settings model refuses them)."""
        try:
            options = options_for(self.base, settings, files)
            source = camera_source(options.camera)
            return self.plan.with_options(options, source).commands(tuning(settings))
        except ConfigError as err:
            raise SettingsError(str(err), field_of(str(err))) from None
        except ValidationError as err:
            message = "; ".join(str(e.get("msg", "")) for e in err.errors())
            raise SettingsError(message, field_of(message)) from None

    def __call__(self, old: SystemSettings, new: SystemSettings, changed: frozenset[str]) -> list[str]:
        files = self.files_for(new, changed)
        commands = self.commands(new, files)
        fresh = {str(files[name]) for name in changed if files.get(name) is not None}
        restart = [(name, argv) for name, argv in commands.items()
                   if argv != self.supervisor.argv(name) or any(path in argv for path in fresh)]
        result = self.supervisor.apply(restart)
        if not result.ok:
            try:
                self.lock_door()
                locked = "the door is locked"
            except Exception as err:  # the door's own start leaves it locked
                logger.warning("locking the door after a failed change: %s", err)
                locked = "the door could not be asked to lock (it starts locked)"
            back = "the old settings are back in place" if result.reverted else \
                "going back to the old settings did not bring every part up: see the parts' states"
            who = result.failed or "a part"
            raise ApplyFailed(f"{who} did not start with the new settings ({result.reason}); nothing was "
                              f"saved, {back}, {locked}", result.failed, result.restarted)
        if set(MQTT_FIELDS) & changed_fields(old, new):
            self.adopt_secrets(files)
        else:
            self.files = files
        self.plan = self.plan.with_options(options_for(self.base, new, files), camera_source(new.camera))
        live = []
        if self.apply_live is not None and live_changed(old, new):
            self.apply_live(new)
            live.append("dashboard")
        return [name for name, _ in restart] + live


def changed_fields(old: SystemSettings, new: SystemSettings) -> set[str]:
    return {name for name in SystemSettings.model_fields if getattr(old, name) != getattr(new, name)}


def live_changed(old: SystemSettings, new: SystemSettings) -> bool:
    """Whether a setting the dashboard applies itself (no restart) changed."""
    return old.timeline_max_events != new.timeline_max_events

