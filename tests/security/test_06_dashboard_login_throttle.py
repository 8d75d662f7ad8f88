"""Row 6: the sign-in throttle cannot be dodged by a made-up X-Forwarded-For or by guessing in parallel.

Attacked: the dashboard served as `up` serves it (real uvicorn on 127.0.0.1, fake collaborators), with a
password store that counts (and, for the parallel attack, holds) every password check. Asserted: the
refusals (401, then 429), how many guesses reached a password check, and that no session was made.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from smartlock.web.accounts import Account
from smartlock.web.auth import PasswordStore
from smartlock.web.routes.guards import CSRF_HEADER
from tests.support import wait_for
from tests.web.conftest import PASSWORD, USERNAME
from tests.web.serve_dashboard import fake_dashboard, served

pytestmark = pytest.mark.timeout(120)

LIMIT = 10  # failed sign-ins per address and minute (LoginThrottle's default)


class GatedPasswords(PasswordStore):
    """Counts password checks; each waits for ``gate`` (open unless a test closes it)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.checks = 0
        self.gate = threading.Event()
        self.gate.set()
        self._count = threading.Lock()

    def authenticate(self, name: Any, password: Any) -> Account | None:
        with self._count:
            self.checks += 1
        assert self.gate.wait(timeout=60), "the test never opened the gate"
        return super().authenticate(name, password)


def login(url: str, password: str, forwarded_for: str | None = None) -> httpx.Response:
    headers = {CSRF_HEADER: "1"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    body = {"username": USERNAME, "password": password}
    return httpx.post(f"{url}/api/auth/login", json=body, headers=headers, timeout=60)


def test_rotating_x_forwarded_for_does_not_reset_the_throttle(tmp_path: Path) -> None:
    passwords = GatedPasswords(tmp_path / "password.json")
    dashboard = fake_dashboard(tmp_path, passwords=passwords)
    with served(dashboard) as url:  # default: no --forwarded-allow-ips, nobody's proxy headers believed
        for i in range(LIMIT):
            assert login(url, f"guess {i}", forwarded_for=f"10.0.{i}.1").status_code == 401
        blocked = login(url, PASSWORD, forwarded_for="10.0.99.1")
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
        assert login(url, PASSWORD, forwarded_for="203.0.113.7, 10.0.98.1").status_code == 429
        assert passwords.checks == LIMIT  # the blocked attempts never reached a password check
        assert len(dashboard.sessions) == 0


def test_concurrent_wrong_logins_cannot_all_be_checked(tmp_path: Path) -> None:
    passwords = GatedPasswords(tmp_path / "password.json")
    dashboard = fake_dashboard(tmp_path, passwords=passwords)
    attempts = 30
    with served(dashboard) as url:
        passwords.gate.clear()  # hold every admitted check until all attempts have arrived
        answers: list[int] = []
        with ThreadPoolExecutor(max_workers=attempts) as pool:
            futures = [pool.submit(login, url, f"guess {i}", f"10.1.{i}.1") for i in range(attempts)]
            for future in futures:
                future.add_done_callback(lambda f: answers.append(f.result().status_code))
            # every attempt is either answered (429) or inside a password check, held at the gate
            wait_for(lambda: passwords.checks + len(answers) == attempts, what="all attempts to arrive")
            assert passwords.checks == LIMIT and sorted(answers) == [429] * (attempts - LIMIT)
            passwords.gate.set()
        assert sorted(answers) == [401] * LIMIT + [429] * (attempts - LIMIT)
        # the right password afterwards is still refused while the address is blocked, and unchecked
        assert login(url, PASSWORD).status_code == 429
        assert passwords.checks == LIMIT
        assert len(dashboard.sessions) == 0


def test_a_trusted_proxys_client_is_throttled_by_its_own_address(tmp_path: Path) -> None:
    passwords = GatedPasswords(tmp_path / "password.json")
    dashboard = fake_dashboard(tmp_path, passwords=passwords)
    with served(dashboard, forwarded_allow_ips="127.0.0.1") as url:
        # the proxy (127.0.0.1) appends the real client; what the client wrote before it is not believed
        for i in range(LIMIT):
            assert login(url, f"guess {i}", forwarded_for=f"198.51.100.{i}, 10.9.9.9").status_code == 401
        assert login(url, PASSWORD, forwarded_for="198.51.100.200, 10.9.9.9").status_code == 429
        assert len(dashboard.sessions) == 0
        assert login(url, PASSWORD, forwarded_for="10.9.9.8").status_code == 200  # another client
        assert passwords.checks == LIMIT + 1
