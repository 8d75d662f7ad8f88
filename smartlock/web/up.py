"""`smartlock up`: every part on this machine as a child process, supervised, behind the dashboard.

The parts run through their own command lines on loopback ports chosen at start: the door (alone in its
process: the relay locks on any failure there), then `smartlock vision` (camera, recognition API and engine,
which also collects frames for enrollment, in one process: a fraction of the memory and CPU of four); the
dashboard on ``--host:--port`` is the only port meant for people. Secrets (door key, recognition API
key, camera and webhook tokens) are made on first run under ``<data-dir>/secrets`` with mode 0600 and
reach the parts only as the paths of those files. Ctrl-C or SIGTERM stops the parts in reverse order and
locks the door before stopping it.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smartlock.errors import ConfigError
from smartlock.service.server import check_tls
from smartlock.web.up_plan import (
    MOCK_PIN,
    DataLayout,
    EngineTuning,
    Plan,
    Ports,
    UpSettings,
    camera_source,
    check_port_free,
    local_host,
    url_host,
)
from smartlock.web.up_settings import (
    SecretFiles,
    command_line_fields,
    options_for,
    secret_files,
    start_settings,
    tuning,
)

if TYPE_CHECKING:
    from smartlock.door.client import DoorClient
    from smartlock.web.auth import PasswordStore
    from smartlock.web.dashboard import Dashboard
    from smartlock.web.settings import SettingsStore, SystemSettings
    from smartlock.web.supervisor import ChildSpec, Supervisor

logger = logging.getLogger("smartlock.up")



# Which lines of the parts' output reach the terminal (everything stays in <data-dir>/log/logger.txt for the
# engine): warnings, errors and tracebacks always; of the engine's per-frame INFO lines only the news.
_NEWS = re.compile(r"Door unlocked|Unlocked for|started|shutdown|stream opened|Frame saved|serving|relay")


def service_echo(line: str) -> bool:
    return "uvicorn.access" not in line


def engine_echo(line: str) -> bool:
    return " INFO " not in line or bool(_NEWS.search(line))


def run_up(options: UpSettings, data_dir: Path, given: set[str] | None = None) -> int:
    """Start everything, serve the dashboard until Ctrl-C / SIGTERM, then stop everything; the exit code.

    ``given``: the fields of ``options`` given as flags (they win over the Settings page's saved settings);
    default: worked out from ``options`` (smartlock.web.up_settings.command_line_fields)."""
    from smartlock.door.auth import load_secret
    from smartlock.door.client import DoorClient
    from smartlock.web.auth import PasswordStore
    from smartlock.web.supervisor import Supervisor
    from smartlock.web.up_settings import Applier

    start = _preflight(options, data_dir, command_line_fields(options) if given is None else set(given))
    layout, password, settings = start.layout, start.password, start.store
    held = layout.lock()
    layout.prepare()
    _doctor_warnings(layout)
    passwords = PasswordStore(layout.web / "password.json")
    if password is not None:
        passwords.set(password)
        logger.info("dashboard password set from %s", options.password_file)

    started = time.monotonic()
    if settings.from_command_line:
        logger.info("settings given as flags win over the Settings page's at each start: %s",
                    ", ".join(sorted(set(settings.from_command_line.values()))))
    plan = Plan(start.options, layout, Ports.pick(), start.source)
    door_client = DoorClient(plan.door_url, load_secret(layout.door_secret), timeout=2.0, tries=1)
    supervisor = Supervisor(_child_specs(plan, tuning(settings.current), door_client))
    dashboard = _dashboard(plan, passwords, settings, door_client, supervisor)
    dashboard.events.max_events = settings.current.timeline_max_events

    def apply_live(new: SystemSettings) -> None:
        dashboard.events.max_events = new.timeline_max_events

    settings.applier = Applier(plan, options, supervisor, settings, start.files, door_client.lock, apply_live)
    server = dashboard_server(dashboard, options)
    hook = HookListener(dashboard, plan.hook_port) if plan.hook_port else None
    watcher = ChildWatcher(supervisor, server, dashboard, plan, started)
    watcher.setup_link = _announce(options, layout, passwords.is_set(), dashboard, watcher.base)

    def request_stop(signum: int, frame: object) -> None:
        # until the server runs (it then takes the signals itself, SIGHUP included)
        server.should_exit = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    if hook is not None:
        hook.start()
    supervisor.start()
    watcher.start()
    try:
        server.run()
    finally:
        logger.info("stopping every part (the door last, locked)")
        if hook is not None:
            hook.stop()
        watcher.stop()
        supervisor.stop()
        dashboard.events.close()
        door_client.close()
        held.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if supervisor.failure:
        raise ConfigError(supervisor.failure)
    logger.info("stopped after %.0f s", time.monotonic() - started)
    return 0


def dashboard_server(dashboard: Dashboard, options: UpSettings) -> Any:
    """The dashboard's uvicorn server as `up` runs it: ``options``' address, TLS and trusted proxies;
    the session cookie is Secure under TLS."""
    from smartlock.service.server import make_server
    from smartlock.web.app import create_app

    dashboard.secure_cookies = options.tls
    app = create_app(dashboard, forwarded_allow_ips=options.trusted_proxies)
    return make_server(app, options.host, options.port, lifespan="off", graceful_timeout=3,
                       tls_cert=options.tls_cert, tls_key=options.tls_key)


class HookListener:
    """The engine's webhook on plain HTTP at 127.0.0.1:``port``, beside an HTTPS dashboard (a thread)."""

    def __init__(self, dashboard: Dashboard, port: int) -> None:
        from smartlock.service.server import make_server
        from smartlock.web.app import create_webhook_app

        self.server = make_server(create_webhook_app(dashboard), "127.0.0.1", port, lifespan="off",
                                  log_level="warning", graceful_timeout=1)
        self._thread = threading.Thread(target=self.server.run, name="smartlock-up-hook", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=5)


@dataclass
class StartPoint:
    """What `up` starts with, once everything that can be wrong before a start has been checked."""

    layout: DataLayout
    password: str | None
    store: SettingsStore  # current: the saved settings with the command line's on top
    options: UpSettings  # `up`'s settings with the Settings page's on top
    source: str | None  # the camera's --source
    files: SecretFiles  # the MQTT secret files given as flags


def _preflight(options: UpSettings, data_dir: Path, given: set[str]) -> StartPoint:
    """Everything that can be wrong before anything starts (nothing is created here)."""
    from smartlock.recognition.store import gallery_backend
    from smartlock.web.auth import read_password_file
    from smartlock.web.settings import SettingsStore

    layout = DataLayout(data_dir.expanduser().resolve())
    store = SettingsStore(layout.web / "settings.json", secrets_dir=layout.secrets)
    current, flags, flag_files = start_settings(store.saved, options, given)
    store.start_with(current, flags)
    files = secret_files(current, flag_files, store)
    effective = options_for(options, current, files)
    source = camera_source(effective.camera)
    existing = gallery_backend(layout.model)
    if options.backend and existing and options.backend != existing:
        raise ConfigError(
            f"the gallery in {layout.model} was made with the {existing} backend; pass --backend {existing} "
            "or another --data-dir"
        )
    check_port_free(options.host, options.port)
    check_tls(options.tls_cert, options.tls_key)  # before anything starts
    password = read_password_file(options.password_file) if options.password_file is not None else None
    return StartPoint(layout, password, store, effective, source, flag_files)


def _child_specs(plan: Plan, engine: EngineTuning, door_client: DoorClient) -> list[ChildSpec]:
    """The parts in start order (their command lines: ``Plan.commands``); the door locks before it is
    stopped or restarted."""
    from smartlock.web.supervisor import ChildSpec

    def lock_door() -> None:
        door_client.lock()
        logger.info("door locked")

    how: dict[str, dict[str, Any]] = {
        "door": {"health_url": f"http://127.0.0.1:{plan.ports.door}/health", "before_stop": lock_door,
                 "echo": service_echo},
        # the camera's API is served last, after the gallery is loaded: its health means all is up
        "vision": {"health_url": f"{plan.camera_base}/health", "ready_timeout": 180.0, "echo": engine_echo},
    }
    return [ChildSpec(name, argv, **how[name]) for name, argv in plan.commands(engine).items()]


def _dashboard(plan: Plan, passwords: PasswordStore, settings: SettingsStore, door_client: DoorClient,
               supervisor: Supervisor) -> Dashboard:
    from smartlock.integrations.probe import MqttProbe
    from smartlock.recognition.client import RecognitionClient
    from smartlock.service.secrets import read_secret
    from smartlock.web.clients import CameraLink
    from smartlock.web.dashboard import Dashboard
    from smartlock.web.events import EventStore
    from smartlock.web.frame_stores import CaptureStore, CollectedFrames

    layout = plan.layout
    return Dashboard(
        passwords=passwords,
        camera=CameraLink(plan.camera_base, read_secret(layout.camera_token, "camera token file")),
        recognition=RecognitionClient(
            plan.recognition_url, api_key=read_secret(layout.api_key, "recognition API key file"),
            timeout=15.0,
        ),
        door=door_client,
        events=EventStore(layout.web),
        settings=settings,
        captures=CaptureStore(layout.web / "captures"),
        collected=CollectedFrames(layout.collected),
        webhook_token=read_secret(layout.webhook_token, "webhook token file"),
        log_path=layout.log,
        system_status=supervisor.status,
        mqtt_status=None if plan.options.mqtt_url is None else MqttProbe(plan.door_health_url),
    )


class ChildWatcher:
    """A thread beside the dashboard: stops it when the first start of a part failed, says when every
    part runs (with the one-time setup link)."""

    def __init__(self, supervisor: Supervisor, server: Any, dashboard: Dashboard, plan: Plan,
                 started: float) -> None:
        self.supervisor = supervisor
        self.server = server
        self.dashboard = dashboard
        self.plan = plan
        self.started = started
        self.setup_link: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="smartlock-up-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        announced = False
        while not self._stop.wait(0.2):
            if self.supervisor.stopped:
                # the first start of a part failed: no dashboard for a system that is not there
                self.server.should_exit = True
                return
            if not announced and all(row["state"] == "running" for row in self.supervisor.status()):
                announced = True
                logger.info("all parts are running (%.0f s); dashboard: %s", time.monotonic() - self.started,
                            self.base)
                if self.dashboard.setup.active and self.setup_link:
                    logger.warning("choose the dashboard password here (one-time link): %s", self.setup_link)

    @property
    def base(self) -> str:
        """The dashboard's address as this machine reaches it."""
        options = self.plan.options
        return f"{options.scheme}://{url_host(local_host(options.host))}:{options.port}"


def _announce(
    options: UpSettings, layout: DataLayout, password_set: bool, dashboard: Dashboard, base: str
) -> str | None:
    """Log where things are; returns the one-time setup link when no password is set yet."""
    link = None
    logger.info("data directory: %s", layout.root)
    logger.info(
        "relay: %s", f"BOARD pin {options.pin} (real GPIO)" if options.pin is not None
        else f"simulated (gpiozero MockFactory, pin {MOCK_PIN}); pass --pin N on a Raspberry Pi",
    )
    if not password_set:
        link = f"{base}/setup?token={dashboard.setup.issue()}"
        logger.warning("no dashboard password yet: open %s once to choose it (or restart with "
                       "--password-file FILE)", link)
    logger.info("dashboard: %s", base)
    return link


def _doctor_warnings(layout: DataLayout) -> None:
    """The checks of `smartlock doctor` that `up` cannot fix by itself, as warnings (never a refusal)."""
    from smartlock.deploy.checks import Status, check_clock, check_disk

    for result in (check_clock(), check_disk(layout.root)):
        if result.status in (Status.WARN, Status.FAIL):
            logger.warning("%s: %s; fix: %s (run `smartlock doctor` for every check)", result.name,
                           result.detail, result.fix)
