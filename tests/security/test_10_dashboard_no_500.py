"""Row 10: inputs that used to be 500s are 4xx, and change nothing.

Attacked: the dashboard served as `up` serves it (real uvicorn on 127.0.0.1, fake collaborators). JSON may
carry lone surrogates ("\\ud800"), which no file, hash or database can take; ids bigger than SQLite's
integers overflowed. Bodies are sent as raw bytes: a JSON encoder would refuse to write them.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from smartlock.web.routes.guards import CSRF_HEADER
from tests.web.conftest import CREDENTIALS, PASSWORD, USERNAME, WEBHOOK_TOKEN
from tests.web.serve_dashboard import fake_dashboard, served

pytestmark = pytest.mark.timeout(120)

SURROGATE = "\\ud800"  # as JSON writes it: the parsed string holds the lone surrogate U+D800
JSON = {"content-type": "application/json", CSRF_HEADER: "1"}


def post(client: httpx.Client, path: str, raw: str) -> httpx.Response:
    return client.post(path, content=raw.encode("ascii"), headers=JSON)


def test_a_surrogate_setup_token_or_password_is_refused_and_the_link_still_works(tmp_path: Path) -> None:
    dashboard = fake_dashboard(tmp_path)
    dashboard.passwords.path.unlink()  # first run: no password yet, a one-time link
    token = dashboard.setup.issue()
    with served(dashboard) as url, httpx.Client(base_url=url) as client:
        answer = post(client, "/api/auth/setup", f'{{"token": "{SURROGATE}", "password": "long enough 1"}}')
        assert answer.status_code == 403
        answer = post(client, "/api/auth/setup",
                      f'{{"token": "{token}", "password": "long enough{SURROGATE}"}}')
        assert answer.status_code == 400 and "Unicode" in answer.json()["message"]
        assert not dashboard.passwords.is_set() and dashboard.setup.active  # nothing changed
        assert post(client, "/api/auth/setup", f'{{"token": "{token}", "password": "{PASSWORD}"}}'
                    ).status_code == 200


def test_surrogate_passwords_never_sign_in_or_change_the_password(tmp_path: Path) -> None:
    dashboard = fake_dashboard(tmp_path)
    with served(dashboard) as url, httpx.Client(base_url=url) as client:
        surrogate = f'{{"username": "{USERNAME}", "password": "{SURROGATE}x"}}'
        assert post(client, "/api/auth/login", surrogate).status_code == 401
        assert len(dashboard.sessions) == 0
        assert client.post("/api/auth/login", json=CREDENTIALS, headers=JSON).status_code == 200
        wrong = post(client, "/api/auth/password", f'{{"current": "{SURROGATE}", "new": "another one 2"}}')
        assert wrong.status_code == 403
        bad_new = post(client, "/api/auth/password",
                       f'{{"current": "{PASSWORD}", "new": "new one {SURROGATE}"}}')
        assert bad_new.status_code == 400
        assert dashboard.passwords.verify(PASSWORD)  # unchanged
        assert client.get("/api/auth/state").json()["signed_in"] is True  # and the session kept


def test_huge_ids_and_surrogate_events_are_4xx(tmp_path: Path) -> None:
    dashboard = fake_dashboard(tmp_path)
    with served(dashboard) as url, httpx.Client(base_url=url) as client:
        assert client.post("/api/auth/login", json=CREDENTIALS, headers=JSON).status_code == 200
        huge = "99999999999999999999"
        for path in (f"/api/events?before={huge}", f"/api/door/events?before={huge}",
                     "/api/events?before=9223372036854775808"):
            answer = client.get(path)
            assert answer.status_code == 422, (path, answer.text)
        assert client.get("/api/events?before=9223372036854775807").status_code == 200  # the largest id
        hook = {"authorization": f"Bearer {WEBHOOK_TOKEN}", "content-type": "application/json"}
        answer = client.post("/hooks/engine", headers=hook,
                             content=f'{{"event": "unlocked", "person": "a{SURROGATE}", "confidence": 0.9}}')
        assert answer.status_code == 400
        assert client.get("/api/events").json()["events"] == []  # nothing recorded
