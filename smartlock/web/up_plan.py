"""What `smartlock up` starts: its settings, the data directory's layout, and each child's settings.

Each child's command line is made by the child's own settings model (``to_argv``), so flags, defaults and
limits are defined once, by the part. Secrets reach the children only as paths of 0600 files.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import os
import socket
import sys
from copy import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import Field, field_validator

from smartlock.config import PartSettings, TlsSettings
from smartlock.door.settings import DEFAULT_LOCK_DELAY, MAX_LOCK_DELAY, DoorSettings
from smartlock.engine.combined import VisionSettings
from smartlock.engine.settings import (
    DEFAULT_KEEP_DAYS,
    DEFAULT_KEEP_UNLOCKS,
    DEFAULT_THRESHOLD,
    EngineSettings,
)
from smartlock.errors import ConfigError
from smartlock.integrations.settings import MqttSettings
from smartlock.service.secrets import ensure_secret

logger = logging.getLogger("smartlock.up")

MOCK_PIN = 7  # BOARD pin 7 (GPIO4) on gpiozero's simulated pins when no --pin is given
COLLECT_MIN_CONFIDENCE = 0.5
COLLECT_KEEP = 300  # collected frames kept for enrollment (the collector prunes older ones)
NO_CAMERA_HINT = (
    "no webcam found (tried device 0, /dev/video0). Pass a video file, a folder of images or a stream URL "
    "instead, e.g. `smartlock up --camera path/to/video.mp4`"
)


def engine_field(name: str) -> Any:
    """A copy of one of the engine's settings fields (flag, default, limits, help), for `up` to hand on."""
    return copy(EngineSettings.model_fields[name])


class UpSettings(TlsSettings, MqttSettings):
    """`smartlock up`: the whole system on this machine (--tls-cert/--tls-key: the dashboard in HTTPS)."""

    camera: str | None = Field(
        None, json_schema_extra={"metavar": "SRC"},
        description="camera source: a device index (0), /dev/videoN, a video file (looped), a folder of "
        "images, an http(s)/rtsp URL, or picamera (default: the Pi camera where picamera2 is installed, "
        "else webcam 0)",
    )
    pin: int | None = Field(
        None, ge=1, le=40,
        description="physical (BOARD) pin of the relay: drives real GPIO; without it the relay is simulated",
    )
    data_dir: Path | None = Field(
        None, description="gallery, events, unlock frames and secrets (default: the user's data directory, "
        "$SMARTLOCK_DATA_DIR overrides)",
    )
    host: str = Field("127.0.0.1", description="address of the dashboard (0.0.0.0 for the whole network)")
    port: int = Field(8000, ge=1, le=65535, description="port of the dashboard")
    backend: Literal["arcface", "dlib"] | None = Field(
        None,
        description="recognition backend of a new gallery: arcface (default; accurate, but InsightFace "
        "licenses its weights for non-commercial research only) or dlib (permissive licence, weaker). An "
        "existing gallery keeps the backend it was made with.",
    )
    password_file: Path | None = Field(
        None, description="set the dashboard password from this file (mode 600; else the first run prints "
        "a one-time setup link)",
    )
    lock_delay: float = Field(
        DEFAULT_LOCK_DELAY, gt=0, le=MAX_LOCK_DELAY,
        description="how long an unlock keeps the door open, in seconds",
    )
    liveness: Literal["on", "off"] = Field(
        "on", description="unlock only for faces judged live, refusing photos, printed cards and screens "
        "(off: any recognised face opens the door, as in the seed)",
    )
    liveness_still_frame: Literal["on", "off"] = Field(
        "on", description="refuse a face held still between two straight edges close on either side (a "
        "screen or card on a stand); off where the background frames the head of a person standing at the "
        "camera (a doorway, a window, shelves), which lets such a screen in",
    )
    # handed to vision as they are: the engine's own flags, defaults and limits
    liveness_timeout: float = engine_field("liveness_timeout")
    spoof_lockout: int = engine_field("spoof_lockout")
    spoof_lockout_minutes: float = engine_field("spoof_lockout_minutes")
    liveness_model: Path | None = engine_field("liveness_model")
    collect: bool = Field(
        True, json_schema_extra={"flag": "--no-collector", "negate": True},
        description="do not run the data collector (frames below the threshold, for enrollment)",
    )
    forwarded_allow_ips: str | None = Field(
        None, json_schema_extra={"metavar": "ADDRESSES"},
        description="comma-separated addresses or networks of the reverse proxies in front of the "
        "dashboard: only their X-Forwarded-For / X-Forwarded-Proto are believed (default: nobody's; "
        "the client is the connection's peer)",
    )

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _addresses(cls, value: str | None) -> str | None:
        if value is None:
            return None
        items = [item.strip() for item in value.split(",") if item.strip()]
        for item in items:
            if item == "*":  # uvicorn would then believe the left-most, client-written address
                raise ValueError("name the proxies' addresses or networks: with * anyone picks their address")
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as err:
                raise ValueError(f"{item!r} is not an IP address or network") from err
        return ",".join(items) or None

    @field_validator("liveness_model")
    @classmethod
    def _model_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():  # before any part starts, not when vision fails
            raise ValueError(f"no such file: {value}")
        return value

    @property
    def trusted_proxies(self) -> tuple[str, ...]:
        return tuple(self.forwarded_allow_ips.split(",")) if self.forwarded_allow_ips else ()

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


@dataclass(frozen=True)
class DataLayout:
    """Where `up` keeps everything under the data directory."""

    root: Path

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def door_secret(self) -> Path:
        return self.secrets / "door-secret.json"

    @property
    def api_key(self) -> Path:
        return self.secrets / "recognition-api-key"

    @property
    def camera_token(self) -> Path:
        return self.secrets / "camera-token"

    @property
    def webhook_token(self) -> Path:
        return self.secrets / "webhook-token"

    @property
    def door_events(self) -> Path:
        return self.root / "door-events.db"

    @property
    def log(self) -> Path:
        return self.root / "log"

    @property
    def collected(self) -> Path:
        return self.root / "collected"

    @property
    def web(self) -> Path:
        return self.root / "web"

    def lock(self) -> TextIO:
        """Hold ``<data-dir>/up.lock`` for as long as the returned file stays open: two `up` runs on one
        data directory would fight over its gallery and databases."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / "up.lock", "a+")  # noqa: SIM115 - held open until `up` ends
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            handle.close()
            raise ConfigError(
                f"another `smartlock up` is using {self.root}; stop it or pass another --data-dir"
            ) from err
        return handle

    def prepare(self) -> None:
        """Create the folders (0700: they hold faces, names and secrets) and the secrets not there yet."""
        for folder in (self.root, self.secrets, self.web, self.model, self.log, self.collected):
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o700)
        if not self.door_secret.exists():
            from smartlock.door.auth import generate_secret

            generate_secret(self.door_secret)
            logger.info("created the door secret %s", self.door_secret)
        for path, what in ((self.api_key, "recognition API key"), (self.camera_token, "camera token"),
                           (self.webhook_token, "webhook token")):
            ensure_secret(path, what=f"{what} file")


def camera_source(spec: str | None, webcam: Path = Path("/dev/video0")) -> str | None:
    """The camera's --source for ``spec`` (None: let the camera choose, i.e. the Pi camera); ConfigError
    with a hint when there is nothing to open."""
    if spec is None:
        if importlib.util.find_spec("picamera2") is not None:
            return None
        if sys.platform.startswith("linux") and not webcam.exists():
            raise ConfigError(NO_CAMERA_HINT)
        return "0"
    spec = spec.strip()
    if spec.isdigit() or spec == "picamera" or spec.startswith("/dev/video") or "://" in spec:
        return spec
    path = Path(spec).expanduser()
    if not path.exists():
        raise ConfigError(
            f"--camera {spec}: no such file or folder; give a video file, a folder of images, a device "
            "index (0) or an http(s)/rtsp URL"
        )
    return str(path.resolve())


def check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({err.strerror}); choose another --port"
            ) from err


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_host(host: str) -> str:
    """The address this machine reaches the dashboard at (for the webhook and the printed links)."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


@dataclass(frozen=True)
class Ports:
    door: int
    recognition: int
    camera: int

    @classmethod
    def pick(cls) -> Ports:
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        door, recognition, camera = sorted(ports)
        return cls(door=door, recognition=recognition, camera=camera)


def smartlock_command(part: str, settings: PartSettings) -> list[str]:
    return [sys.executable, "-m", "smartlock", part, *settings.to_argv()]


@dataclass(frozen=True)
class EngineTuning:
    """The engine's settings that are not flags of `up` (the Settings page changes them)."""

    threshold: float = DEFAULT_THRESHOLD
    keep_days: float = DEFAULT_KEEP_DAYS
    keep_unlocks: int = DEFAULT_KEEP_UNLOCKS


class Plan:
    """The child settings (and so command lines) and URLs of one `up` run; every part on loopback.

    ``commands`` is the one place that says which children run and with which command lines: `up` starts
    them from it, and the Settings page restarts exactly the children whose command line it changes."""

    def __init__(self, options: UpSettings, layout: DataLayout, ports: Ports, source: str | None,
                 hook_port: int | None = None) -> None:
        self.options = options
        self.layout = layout
        self.ports = ports
        self.source = source
        self.camera_base = f"http://127.0.0.1:{ports.camera}"
        self.stream_url = f"{self.camera_base}/stream.mjpg"
        self.recognition_url = f"http://127.0.0.1:{ports.recognition}/face-recognition"
        self.door_url = f"http://127.0.0.1:{ports.door}/unlock"
        self.door_health_url = f"http://127.0.0.1:{ports.door}/health"
        # Under TLS the engine posts its events to a plain-HTTP listener on loopback (the webhook only):
        # the dashboard's certificate names the machine, not 127.0.0.1, and may be self-signed.
        self.hook_port = hook_port if hook_port is not None else free_port() if options.tls else None
        hook_base = f"http://127.0.0.1:{self.hook_port}" if self.hook_port else \
            f"http://{url_host(local_host(options.host))}:{options.port}"
        self.webhook_url = f"{hook_base}/hooks/engine"
        self.live_url = f"{hook_base}/hooks/engine/live"  # the analysed frames for the live view

    def with_options(self, options: UpSettings, source: str | None) -> Plan:
        """The same run (ports, data directory, webhook listener) with other settings of `up`."""
        return Plan(options, self.layout, self.ports, source, hook_port=self.hook_port)

    def commands(self, tuning: EngineTuning) -> dict[str, list[str]]:
        """Every child's command line by name, in start order: the door (the relay, alone in its process so
        it locks on any failure) and `smartlock vision` (camera, recognition API and engine in one process,
        which also collects frames for enrollment unless --no-collector)."""
        return {"door": self.door(), "vision": self.vision(tuning)}

    def door(self) -> list[str]:
        pin = self.options.pin
        return smartlock_command("door", DoorSettings(
            pin=pin if pin is not None else MOCK_PIN, pin_factory="auto" if pin is not None else "mock",
            host="127.0.0.1", port=self.ports.door, secret_file=self.layout.door_secret,
            events_db=self.layout.door_events, lock_delay=self.options.lock_delay,
            **self.mqtt("mqtt_images"),
        ))

    def vision(self, tuning: EngineTuning | None = None) -> list[str]:
        tuning = tuning or EngineTuning()
        collect: dict[str, Any] = {}
        if self.options.collect:
            collect = {"collect_dir": self.layout.collected, "collect_keep_frames": COLLECT_KEEP,
                       "collect_min_confidence": min(COLLECT_MIN_CONFIDENCE, tuning.threshold),
                       "collect_max_confidence": tuning.threshold}
        return smartlock_command("vision", VisionSettings(
            source=self.source, camera_port=self.ports.camera, recognition_port=self.ports.recognition,
            backend=self.options.backend, model=self.layout.model, camera_token_file=self.layout.camera_token,
            face_recognition_api_key_file=self.layout.api_key, door_api_url=self.door_url,
            door_secret_file=self.layout.door_secret, threshold=tuning.threshold, log_path=self.layout.log,
            webhook_url=self.webhook_url, live_url=self.live_url,
            webhook_token_file=self.layout.webhook_token, keep_days=tuning.keep_days,
            keep_unlocks=tuning.keep_unlocks, liveness=self.options.liveness,
            liveness_still_frame=self.options.liveness_still_frame,
            liveness_timeout=self.options.liveness_timeout, spoof_lockout=self.options.spoof_lockout,
            spoof_lockout_minutes=self.options.spoof_lockout_minutes,
            liveness_model=self.options.liveness_model and self.options.liveness_model.resolve(),
            **collect, **self.mqtt("mqtt_allow_unlock", "mqtt_unlock_code_file"),
        ))

    def mqtt(self, *leave_out: str) -> dict[str, Any]:
        """The MQTT settings for a child: files by absolute path (the password never on a command line);
        the door takes the unlock options, the engine the images one."""
        values = {name: value.resolve() if isinstance(value, Path) else value
                  for name, value in self.options.mqtt_values().items() if name not in leave_out}
        return values if self.options.mqtt_url is not None else {}
