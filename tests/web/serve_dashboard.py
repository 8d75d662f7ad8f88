"""The dashboard as its own process, served exactly as `smartlock up` serves it (``up.dashboard_server``:
its --host/--port, --tls-cert/--tls-key, --forwarded-allow-ips), with fake recognition and door clients.

    python -m tests.web.serve_dashboard --data DIR --port N [--tls-cert C --tls-key K] [...]

The password is tests.web.conftest.PASSWORD, the webhook token WEBHOOK_TOKEN; the timeline and captured
frames live in ``--web-dir`` (default DIR/web), so a test can put them on a tiny file system. The attack
tests under tests/security/ run it to measure the process (its memory) and read its log.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from smartlock.config import project_root
from smartlock.web.auth import PasswordStore
from smartlock.web.clients import CameraLink
from smartlock.web.dashboard import Dashboard
from smartlock.web.events import EventStore
from smartlock.web.frame_stores import CaptureStore, CollectedFrames
from smartlock.web.settings import SettingsStore
from smartlock.web.up import dashboard_server
from smartlock.web.up_plan import UpSettings
from tests.support import free_port, stop_process, wait_for
from tests.web.conftest import PASSWORD, WEBHOOK_TOKEN
from tests.web.fakes import FakeDoor, FakeRecognition

SERVER_FLAGS = ("host", "port", "tls_cert", "tls_key", "forwarded_allow_ips")


def fake_dashboard(data: Path, web: Path | None = None, passwords: PasswordStore | None = None) -> Dashboard:
    """A Dashboard over fakes (no camera: its pages answer 502), PASSWORD set, WEBHOOK_TOKEN its hook's."""
    web = web or data / "web"
    passwords = passwords or PasswordStore(data / "password.json")
    passwords.set(PASSWORD)
    return Dashboard(
        passwords=passwords,
        camera=CameraLink("http://127.0.0.1:9", None, timeout=1.0),
        recognition=FakeRecognition(),
        door=FakeDoor(),
        events=EventStore(web),
        settings=SettingsStore(web / "settings.json"),
        captures=CaptureStore(web / "captures"),
        collected=CollectedFrames(data / "collected"),
        webhook_token=WEBHOOK_TOKEN,
        log_path=data / "log",
    )


@contextlib.contextmanager
def served(dashboard: Dashboard, **options: Any) -> Iterator[str]:
    """``dashboard`` served as `up` serves it (``UpSettings(**options)``) in a thread; yields its URL."""
    settings = UpSettings(host="127.0.0.1", **{"port": free_port(), **options})
    server = dashboard_server(dashboard, settings)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), what="the dashboard to start")
        assert server.started, "the dashboard did not start"
        yield f"{settings.scheme}://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        dashboard.events.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="serve_dashboard")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--web-dir", type=Path)
    for name in SERVER_FLAGS:
        UpSettings.add_option(parser, name)
    args = parser.parse_args(argv)
    options = UpSettings.from_args(args)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    dashboard = fake_dashboard(args.data, args.web_dir or args.data / "web")
    server = dashboard_server(dashboard, options)
    try:
        server.run()
    finally:
        dashboard.events.close()
    return 0


@contextlib.contextmanager
def dashboard_process(
    data: Path, port: int, *flags: str, log: Path | None = None, verify: str | bool = True,
) -> Iterator[subprocess.Popen]:
    """Run this module as a process on 127.0.0.1:``port`` until it answers; SIGTERM it afterwards.
    ``verify`` is how the readiness probe checks an HTTPS server's certificate (its file, for a test)."""
    data.mkdir(parents=True, exist_ok=True)
    output = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.web.serve_dashboard", "--data", str(data), "--host", "127.0.0.1",
         "--port", str(port), *flags],
        cwd=project_root(), env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=output,
        stderr=subprocess.STDOUT,
    )
    scheme = "https" if "--tls-cert" in flags else "http"
    url = f"{scheme}://127.0.0.1:{port}/api/auth/state"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the dashboard exited with {process.returncode} before it answered")
            try:
                httpx.get(url, verify=verify, timeout=2.0)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield process
    finally:
        stop_process(process)
        if log:
            output.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
