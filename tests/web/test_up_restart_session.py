"""A real `smartlock up` restarted on the same data directory: a signed-in browser stays signed in, a
signed-out session stays out, a viewer stays a viewer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support import LOOPBACK, free_port, stop_process, wait_until_up
from tests.web.fakes import jpeg

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
PASSWORD = "restart keeps me in"


@contextmanager
def running_up(tmp_path: Path, port: int, name: str) -> Iterator[str]:
    frames = tmp_path / "frames"
    if not frames.exists():
        frames.mkdir()
        for index in range(3):
            (frames / f"{index}.jpg").write_bytes(jpeg(320, 240, (80 + 40 * index, 120, 150)))
    password = tmp_path / "password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    log = tmp_path / f"{name}.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "smartlock", "up", "--camera", str(frames), "--data-dir",
             str(tmp_path / "data"), "--port", str(port), "--password-file", str(password), "--no-collector"],
            stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://{LOOPBACK}:{port}"
    try:
        wait_until_up(f"{base}/api/auth/state", timeout=120, process=process)
        yield base
    except BaseException:
        print(log.read_text()[-4000:])
        raise
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        stop_process(process, timeout=60)


def client(base: str, cookies: httpx.Cookies | None = None) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"X-Smartlock-Request": "1"}, timeout=60, cookies=cookies)


def signed_in(base: str, username: str, password: str) -> httpx.Client:
    session = client(base)
    answer = session.post("/api/auth/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return session


def test_sessions_survive_a_restart_of_up(tmp_path: Path) -> None:
    port = free_port()
    with running_up(tmp_path, port, "first") as base:
        admin = signed_in(base, "admin", PASSWORD)
        created = admin.post("/api/accounts", json={"username": "reception", "password": "viewer password 1",
                                                    "role": "viewer"})
        assert created.status_code in (200, 201), created.text
        viewer = signed_in(base, "reception", "viewer password 1")
        leaving = signed_in(base, "admin", PASSWORD)
        assert leaving.post("/api/auth/logout").status_code in (200, 204)
        kept = {"admin": admin.cookies, "viewer": viewer.cookies, "signed out": leaving.cookies}
    with running_up(tmp_path, port, "second") as base:
        me = client(base, kept["admin"]).get("/api/me")
        assert me.status_code == 200 and me.json()["role"] == "admin"
        as_viewer = client(base, kept["viewer"])
        assert as_viewer.get("/api/me").json()["role"] == "viewer"
        assert as_viewer.post("/api/door/lock").status_code == 403  # still a viewer after the restart
        assert client(base, kept["signed out"]).get("/api/me").status_code == 401
        assert client(base).get("/api/me").status_code == 401
