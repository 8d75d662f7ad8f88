"""Row 18: sessions survive a restart of the dashboard, and nothing else does.

Attacked: the dashboard as its own process (served as `up` serves it, fake collaborators), stopped and
started again on the same data folder. Asserted: a live session works after the restart; a signed-out
session, the other sessions of a user who changed their password, a session past its lifetime, a forged
cookie and a cookie made from the sessions file (which holds only hashes) are refused after it; a corrupt
sessions file means signing in again (logged), never a crash.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import stat
import time
from pathlib import Path

import httpx
import pytest

from smartlock.web.routes.guards import COOKIE, CSRF_HEADER
from tests.support import free_port
from tests.web.conftest import CREDENTIALS
from tests.web.serve_dashboard import dashboard_process

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

VIEWER, VIEWER_PASSWORD = "reception", "front desk password"


def sign_in(url: str, user: str, password: str) -> str:
    answer = httpx.post(f"{url}/api/auth/login", json={"username": user, "password": password},
                        headers={CSRF_HEADER: "1"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.cookies[COOKIE]


def call(url: str, cookie: str, method: str = "GET", path: str = "/api/me", **kwargs) -> httpx.Response:
    return httpx.request(method, f"{url}{path}", cookies={COOKIE: cookie}, headers={CSRF_HEADER: "1"},
                         timeout=10, **kwargs)


def me(url: str, cookie: str) -> dict | int:
    answer = call(url, cookie)
    return answer.json() if answer.status_code == 200 else answer.status_code


def test_sessions_survive_a_restart_and_revocations_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    sessions_file = data / "web" / "sessions.json"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with dashboard_process(data, port):
        admin = sign_in(url, CREDENTIALS["username"], CREDENTIALS["password"])
        new = {"username": VIEWER, "password": VIEWER_PASSWORD, "role": "viewer"}
        assert call(url, admin, "POST", "/api/accounts", json=new).status_code == 201
        signed_out = sign_in(url, VIEWER, VIEWER_PASSWORD)
        assert call(url, signed_out, "POST", "/api/auth/logout").status_code == 200
        changer, other_browser = sign_in(url, VIEWER, VIEWER_PASSWORD), sign_in(url, VIEWER, VIEWER_PASSWORD)
        changed = call(url, changer, "POST", "/api/auth/password",
                       json={"current": VIEWER_PASSWORD, "new": "a new front desk password"})
        assert changed.status_code == 200
        changer = changed.cookies[COOKIE]  # the session that changed it starts afresh
        assert me(url, other_browser) == 401 and me(url, signed_out) == 401

    text = sessions_file.read_text()
    assert stat.S_IMODE(sessions_file.stat().st_mode) == 0o600
    for token in (admin, changer, other_browser, signed_out):
        assert token not in text  # only hashes of the tokens are kept
    stolen = list(json.loads(text)["sessions"])
    assert hashlib.sha256(admin.encode()).hexdigest() in stolen

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with dashboard_process(data, port):  # the restart
        assert me(url, admin) == {"user": "admin", "role": "admin"}
        assert me(url, changer) == {"user": VIEWER, "role": "viewer"}
        assert me(url, other_browser) == 401  # ended by the password change, and stays ended
        assert me(url, signed_out) == 401
        assert me(url, secrets.token_urlsafe(32)) == 401  # forged
        for key in stolen:  # what a copy of the file gives: no cookie that works
            assert me(url, key) == 401
        assert call(url, admin, path="/live").status_code == 200  # the pages too
        assert call(url, other_browser, path="/live").status_code == 303

    # an old session: past its lifetime while the dashboard was stopped
    saved = json.loads(sessions_file.read_text())
    key = hashlib.sha256(admin.encode()).hexdigest()
    saved["sessions"][key][2] = time.time() - 2 * 86400  # made two days ago (the lifetime is 24 h)
    sessions_file.write_text(json.dumps(saved))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with dashboard_process(data, port):
        assert me(url, admin) == 401
        assert me(url, changer) == {"user": VIEWER, "role": "viewer"}
    assert key not in json.loads(sessions_file.read_text())["sessions"]


def test_a_corrupt_sessions_file_means_signing_in_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = tmp_path / "dashboard.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with dashboard_process(data, port):
        admin = sign_in(url, CREDENTIALS["username"], CREDENTIALS["password"])
    sessions_file = data / "web" / "sessions.json"
    sessions_file.write_bytes(b'{"version": 1, "sessions": {"' + b"\xff" * 40)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with dashboard_process(data, port, log=log):
        assert me(url, admin) == 401
        again = sign_in(url, CREDENTIALS["username"], CREDENTIALS["password"])
        assert me(url, again) == {"user": "admin", "role": "admin"}
    text = log.read_text()
    assert "everyone signs in again" in text and "Traceback" not in text
    assert json.loads(sessions_file.read_text())["sessions"]  # a good file again
