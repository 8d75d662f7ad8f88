"""`smartlock up`: every part on this machine as a child process, supervised, behind the dashboard.

The parts run through their own command lines on loopback ports chosen at start (door, recognition,
camera, engine, collector, in that order); the dashboard on ``--host:--port`` is the only port meant for
people. Secrets (door key, recognition API key, camera token) are made on first run under
``<data-dir>/secrets`` with mode 0600. Ctrl-C or SIGTERM stops the parts in reverse order and locks the
door before stopping it.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import json
import logging
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from smartlock.errors import ConfigError

log = logging.getLogger("smartlock.up")

MOCK_PIN = 7  # BOARD pin 7 (GPIO4) on gpiozero's simulated pins when no --pin is given
DEFAULT_LOCK_DELAY = 3.0
COLLECT_MIN_CONFIDENCE = 0.5
COLLECT_KEEP = 300
NO_CAMERA_HINT = (
    "no webcam found (tried device 0, /dev/video0). Pass a video file, a folder of images or a stream URL "
    "instead, e.g. `smartlock up --camera path/to/video.mp4`"
)


@dataclass(frozen=True)
class UpOptions:
    data_dir: Path
    camera: str | None = None
    pin: int | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    backend: str | None = None
    password_file: Path | None = None
    collect: bool = True
    lock_delay: float = DEFAULT_LOCK_DELAY


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

    def lock(self) -> object:
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
        """Create the folders (private ones 0700) and the secrets that do not exist yet."""
        from smartlock.web.auth import new_secret_file

        for folder in (self.root, self.secrets, self.web):
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o700)
        for folder in (self.model, self.log, self.collected):
            folder.mkdir(parents=True, exist_ok=True)
        if not self.door_secret.exists():
            from smartlock.door.auth import generate_secret

            generate_secret(self.door_secret)
            log.info("created the door secret %s", self.door_secret)
        new_secret_file(self.api_key)
        new_secret_file(self.camera_token)


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


def gallery_backend(model_dir: Path) -> str | None:
    """The backend the gallery in ``model_dir`` was made with, or None when there is no gallery yet."""
    try:
        return json.loads((model_dir / "gallery.json").read_text(encoding="utf-8")).get("backend")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as err:
        raise ConfigError(f"the gallery in {model_dir} is unreadable: {err}") from err


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
        return sock.getsockname()[1]


def local_host(host: str) -> str:
    """The address this machine reaches the dashboard at (for the webhook and the printed links)."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host


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


# Which lines of the parts' output reach the terminal (everything stays in <data-dir>/log/log.txt for the
# engine): warnings, errors and tracebacks always; of the engine's per-frame INFO lines only the news.
_NEWS = re.compile(r"Door unlocked|Unlocked for|started|shutdown|stream opened|Frame saved|serving|relay")


def service_echo(line: str) -> bool:
    return "uvicorn.access" not in line


def engine_echo(line: str) -> bool:
    return " INFO " not in line or bool(_NEWS.search(line))


def smartlock_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "smartlock", *args]


class Plan:
    """The child commands and URLs of one `up` run."""

    def __init__(self, options: UpOptions, layout: DataLayout, ports: Ports, webhook_token: str,
                 source: str | None) -> None:
        self.options = options
        self.layout = layout
        self.ports = ports
        self.webhook_token = webhook_token
        self.source = source
        self.camera_base = f"http://127.0.0.1:{ports.camera}"
        self.recognition_url = f"http://127.0.0.1:{ports.recognition}/face-recognition"
        self.door_url = f"http://127.0.0.1:{ports.door}/unlock"
        self.camera_token = layout.camera_token.read_text(encoding="utf-8").strip()
        self.api_key = layout.api_key.read_text(encoding="utf-8").strip()
        dashboard = f"http://{_url_host(local_host(options.host))}:{options.port}"
        self.webhook_url = f"{dashboard}/hooks/engine/{webhook_token}"

    @property
    def stream_url(self) -> str:
        return f"{self.camera_base}/stream.mjpg?token={self.camera_token}"

    def door(self) -> list[str]:
        pin = self.options.pin
        return smartlock_command(
            "door", "--pin", str(pin if pin is not None else MOCK_PIN),
            "--pin-factory", "auto" if pin is not None else "mock",
            "--host", "127.0.0.1", "--port", str(self.ports.door),
            "--secret-file", str(self.layout.door_secret),
            "--events-db", str(self.layout.door_events),
            "--lock-delay", f"{self.options.lock_delay:g}",
        )

    def recognition(self) -> list[str]:
        args = ["recognition", "--model", str(self.layout.model), "--host", "127.0.0.1",
                "--port", str(self.ports.recognition), "--api-key-file", str(self.layout.api_key)]
        if self.options.backend:
            args += ["--backend", self.options.backend]
        return smartlock_command(*args)

    def camera(self) -> list[str]:
        args = ["camera", "--host", "127.0.0.1", "--port", str(self.ports.camera),
                "--token-file", str(self.layout.camera_token)]
        if self.source is not None:
            args += ["--source", self.source]
        return smartlock_command(*args)

    def engine(self, threshold: float) -> list[str]:
        return smartlock_command(
            "engine", "--camera-url", self.stream_url,
            "--face-recognition-api-url", self.recognition_url,
            "--door-api-url", self.door_url, "--door-secret-file", str(self.layout.door_secret),
            "--threshold", f"{threshold:g}", "--log-path", str(self.layout.log),
            "--webhook-url", self.webhook_url,
        )

    def collector(self, threshold: float) -> list[str]:
        return smartlock_command(
            "collect", "-min", f"{min(COLLECT_MIN_CONFIDENCE, threshold):g}", "-max", f"{threshold:g}",
            "--camera-url", self.stream_url, "--face-recognition-api-url", self.recognition_url,
            "--fps", "1", "--log-path", str(self.layout.collected),
        )

    @property
    def child_env(self) -> dict[str, str]:
        # the engine and collector read the recognition API key from the environment, not argv
        return {"SMARTLOCK_API_KEY": self.api_key}


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def run_up(options: UpOptions) -> int:
    """Start everything, serve the dashboard until Ctrl-C / SIGTERM, then stop everything; the exit code."""
    import uvicorn

    from smartlock.door.auth import load_secret
    from smartlock.door.client import DoorClient
    from smartlock.recognition.client import RecognitionClient
    from smartlock.web.app import Dashboard, create_app
    from smartlock.web.auth import PasswordStore, read_password_file
    from smartlock.web.events import EventStore
    from smartlock.web.services import CameraLink, CaptureStore, CollectedFrames
    from smartlock.web.settings import SettingsStore
    from smartlock.web.supervisor import ChildSpec, Supervisor

    if options.pin is not None and options.pin < 1:
        raise ConfigError(f"--pin must be a physical (BOARD) pin number, got {options.pin}")
    source = camera_source(options.camera)
    layout = DataLayout(Path(options.data_dir).expanduser().resolve())
    existing = gallery_backend(layout.model)
    if options.backend and existing and options.backend != existing:
        raise ConfigError(
            f"the gallery in {layout.model} was made with the {existing} backend; pass --backend {existing} "
            "or another --data-dir"
        )
    check_port_free(options.host, options.port)
    password = read_password_file(options.password_file) if options.password_file is not None else None
    held = layout.lock()
    layout.prepare()
    passwords = PasswordStore(layout.web / "password.json")
    if password is not None:
        passwords.set(password)
        log.info("dashboard password set from %s", options.password_file)

    started = time.monotonic()
    settings = SettingsStore(layout.web / "settings.json")
    plan = Plan(options, layout, Ports.pick(), secrets.token_urlsafe(24), source)
    door_client = DoorClient(plan.door_url, load_secret(layout.door_secret), timeout=2.0, tries=1)

    def lock_door() -> None:
        door_client.lock()
        log.info("door locked")

    threshold = settings.current.threshold
    specs = [
        ChildSpec("door", plan.door(), f"http://127.0.0.1:{plan.ports.door}/health", before_stop=lock_door,
                  echo=service_echo),
        ChildSpec("recognition", plan.recognition(), f"http://127.0.0.1:{plan.ports.recognition}/health",
                  ready_timeout=180.0, echo=service_echo),
        ChildSpec("camera", plan.camera(), f"{plan.camera_base}/health", echo=service_echo),
        ChildSpec("engine", plan.engine(threshold), env=plan.child_env, settle=3.0, echo=engine_echo),
    ]
    if options.collect:
        specs.append(ChildSpec("collector", plan.collector(threshold), env=plan.child_env, settle=3.0,
                               echo=engine_echo))
    supervisor = Supervisor(specs)

    def on_settings(old, new) -> None:
        if new.threshold != old.threshold:
            log.info("threshold %.2f -> %.2f: restarting the engine", old.threshold, new.threshold)
            supervisor.restart("engine", plan.engine(new.threshold))
            if options.collect:
                supervisor.restart("collector", plan.collector(new.threshold))

    settings.subscribe(on_settings)
    dashboard = Dashboard(
        passwords=passwords,
        camera=CameraLink(plan.camera_base, plan.camera_token),
        recognition=RecognitionClient(plan.recognition_url, api_key=plan.api_key, timeout=15.0),
        door=door_client,
        events=EventStore(layout.web),
        settings=settings,
        captures=CaptureStore(layout.web / "captures"),
        collected=CollectedFrames(layout.collected),
        webhook_token=plan.webhook_token,
        log_path=layout.log,
        model_dir=layout.model,
        system_status=supervisor.status,
    )
    app = create_app(dashboard)
    server = uvicorn.Server(uvicorn.Config(
        app, host=options.host, port=options.port, log_config=None, access_log=False, lifespan="off",
        timeout_graceful_shutdown=3,
    ))
    base = f"http://{_url_host(local_host(options.host))}:{options.port}"
    setup_link = _announce(options, layout, passwords.is_set(), dashboard, base)

    def request_stop(signum: int, frame: object) -> None:
        server.should_exit = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    stop_watch = threading.Event()

    def watch_children() -> None:
        next_prune = time.monotonic()
        announced = False
        while not stop_watch.wait(0.2):
            if supervisor.stopped:
                # the first start of a part failed: no dashboard for a system that is not there
                server.should_exit = True
                return
            if not announced and all(row["state"] == "running" for row in supervisor.status()):
                announced = True
                log.info("all parts are running (%.0f s); dashboard: %s", time.monotonic() - started, base)
                if dashboard.setup.active and setup_link:
                    log.warning("choose the dashboard password here (one-time link): %s", setup_link)
            if options.collect and time.monotonic() >= next_prune:
                _prune_collected(layout.collected, COLLECT_KEEP)
                next_prune = time.monotonic() + 60

    watcher = threading.Thread(target=watch_children, name="smartlock-up-watch", daemon=True)
    supervisor.start()
    watcher.start()
    try:
        server.run()
    finally:
        log.info("stopping every part (the door last, locked)")
        stop_watch.set()
        supervisor.stop()
        watcher.join(timeout=2)
        dashboard.events.close()
        door_client.close()
        held.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if supervisor.failure:
        raise ConfigError(supervisor.failure)
    log.info("stopped after %.0f s", time.monotonic() - started)
    return 0


def _announce(options: UpOptions, layout: DataLayout, password_set: bool, dashboard, base: str) -> str | None:
    """Log where things are; returns the one-time setup link when no password is set yet."""
    link = None
    log.info("data directory: %s", layout.root)
    log.info(
        "relay: %s", f"BOARD pin {options.pin} (real GPIO)" if options.pin is not None
        else f"simulated (gpiozero MockFactory, pin {MOCK_PIN}); pass --pin N on a Raspberry Pi",
    )
    if not password_set:
        link = f"{base}/setup?token={dashboard.setup.issue()}"
        log.warning("no dashboard password yet: open %s once to choose it (or restart with --password-file "
                    "FILE)", link)
    log.info("dashboard: %s", base)
    return link


def _prune_collected(folder: Path, keep: int) -> None:
    """Keep the newest ``keep`` frames the collector saved (with their crops and sidecars)."""
    try:
        frames = sorted((p for p in folder.glob("*.jpeg") if ".face-" not in p.name),
                        key=lambda p: p.stat().st_mtime)
    except OSError:
        return
    for frame in frames[: max(0, len(frames) - keep)]:
        stem = frame.name[: -len(".jpeg")]
        for item in [frame, folder / f"{stem}.json", *folder.glob(f"{glob.escape(stem)}.face-*.jpeg")]:
            with contextlib.suppress(OSError):
                item.unlink()
