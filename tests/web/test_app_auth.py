"""Sign-in over HTTP: pages and APIs need a session, the setup link, cookies, CSRF, expiry, headers."""

from __future__ import annotations

import httpx
import pytest

from smartlock.web.routes.guards import COOKIE, CSRF_HEADER
from tests.web.conftest import CREDENTIALS, PASSWORD, USERNAME, System

PAGES = ["/live", "/events", "/people", "/calibration"]
APIS = [
    ("GET", "/api/system"), ("GET", "/api/people"), ("GET", "/api/events"), ("GET", "/api/door/status"),
    ("GET", "/api/camera/snapshot.jpg"), ("GET", "/api/camera/stream.mjpg"), ("GET", "/api/live/faces"),
    ("GET", "/api/calibration"), ("POST", "/api/door/lock"), ("POST", "/api/captures"),
    ("DELETE", "/api/people?name=x"), ("PUT", "/api/settings"),
]


def test_pages_redirect_to_sign_in_without_a_session(system: System) -> None:
    client = system.client(signed_in=False)
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 303
        assert response.headers["location"] == f"/login?next={page}"
    assert client.get("/").headers["location"] == "/login"
    login = client.get("/login")
    assert login.status_code == 200 and 'id="password"' in login.text
    assert client.get("/static/style.css").status_code == 200  # assets of the sign-in page are public


@pytest.mark.parametrize(("method", "path"), APIS)
def test_every_api_needs_a_session(system: System, method: str, path: str) -> None:
    response = system.client(signed_in=False).request(method, path, json={})
    assert response.status_code == 401
    assert response.json() == {"message": "sign in first"}
    assert system.door.locks == 0


def test_sign_in_sets_a_strict_httponly_cookie_and_opens_the_pages(system: System) -> None:
    client = system.client(signed_in=False)
    response = client.post("/api/auth/login", json=CREDENTIALS)
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert PASSWORD not in cookie
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 200 and "<main" in response.text
    assert client.get("/login").headers["location"] == "/live"
    assert client.get("/api/auth/state").json()["signed_in"] is True


def test_wrong_passwords_are_refused_then_throttled(system: System) -> None:
    client = system.client(signed_in=False)
    for _ in range(10):
        response = client.post("/api/auth/login", json={"username": USERNAME, "password": "not the password"})
        assert response.status_code == 401
        assert response.json()["message"] == "wrong password or user name"
        assert "set-cookie" not in response.headers
    blocked = client.post("/api/auth/login", json=CREDENTIALS)  # even the right one, for a while
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert client.post("/api/auth/login", json={"nope": 1}).status_code == 429


def test_state_changes_need_the_csrf_header_and_the_same_origin(system: System) -> None:
    client = system.client()
    bare = httpx.Client(base_url=system.url, cookies=client.cookies)
    response = bare.post("/api/door/lock")
    assert response.status_code == 403
    assert response.json()["message"] == "cross-site request refused"
    response = client.post("/api/door/lock", headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    assert system.door.locks == 0
    assert bare.post("/api/auth/login", json=CREDENTIALS).status_code == 403  # login CSRF too
    assert client.post("/api/door/lock", headers={"Origin": system.url}).status_code == 200
    assert system.door.locks == 1


def test_sessions_expire_and_sign_out_ends_them(system: System) -> None:
    client = system.client()
    assert client.get("/api/system").status_code == 200
    system.clock.advance(601)  # idle longer than the idle timeout
    assert client.get("/api/system").status_code == 401
    assert client.get("/live").status_code == 303
    client = system.client()
    assert client.post("/api/auth/logout").status_code == 200
    assert client.get("/api/system").status_code == 401


def test_first_run_setup_link(system: System) -> None:
    system.dashboard.passwords.path.unlink()
    token = system.dashboard.setup.issue()
    client = system.client(signed_in=False)
    page = client.get("/login")
    assert "setup link" in page.text  # explains where the link is
    assert client.post("/api/auth/login", json=CREDENTIALS).status_code == 409
    assert client.get("/setup").status_code == 200
    wrong = client.post("/api/auth/setup", json={"token": "guess", "password": "long enough pw"})
    assert wrong.status_code == 403
    short = client.post("/api/auth/setup", json={"token": token, "password": "short"})
    assert short.status_code == 400 and "at least 8" in short.json()["message"]
    done = client.post("/api/auth/setup", json={"token": token, "password": "the chosen password"})
    assert done.status_code == 200
    assert client.get("/api/system").status_code == 200  # signed in by choosing it
    again = system.client(signed_in=False).post(
        "/api/auth/setup", json={"token": token, "password": "attacker password"}
    )
    assert again.status_code == 409
    assert system.dashboard.passwords.verify("the chosen password")
    assert client.get("/setup").headers["location"] == "/login"


def test_changing_the_password_ends_other_sessions(system: System) -> None:
    first, second = system.client(), system.client()
    assert first.post("/api/auth/password", json={"current": "wrong one", "new": "x" * 10}).status_code == 403
    response = first.post("/api/auth/password", json={"current": PASSWORD, "new": "a brand new password"})
    assert response.status_code == 200
    assert second.get("/api/system").status_code == 401
    assert first.get("/api/system").status_code == 200  # the one who changed it stays signed in
    assert system.dashboard.passwords.verify("a brand new password")


def test_security_headers(system: System) -> None:
    client = system.client()
    for path in ("/login", "/live", "/api/system"):
        headers = client.get(path).headers
        assert "default-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
    assert client.get("/api/system").headers["cache-control"] == "no-store"
    assert client.get("/docs").status_code in (303, 404)  # no schema or docs pages to browse
    assert client.get("/openapi.json").status_code == 404


def test_csrf_header_name_matches_the_front_end() -> None:
    from smartlock.web.routes.pages import STATIC_DIR

    assert f'"{CSRF_HEADER}"' in (STATIC_DIR / "common.js").read_text()


def test_request_bodies_are_limited_per_path(system: System) -> None:
    """Refused (413) before parsing: a sign-in form is a few KB, a JSON call 64 KB, a photo up to 20 MB."""
    anonymous = system.client(signed_in=False)
    huge_login = anonymous.post("/api/auth/login", json={"password": "x" * 20_000})
    assert huge_login.status_code == 413 and "limit" in huge_login.json()["message"]
    client = system.client()
    huge_json = client.put("/api/settings", content=b'{"threshold": 0.9' + b" " * 70_000 + b"}",
                           headers={"content-type": "application/json"})
    assert huge_json.status_code == 413
    assert system.dashboard.settings.current.threshold == 0.8
    big_photo = client.post("/api/people/enroll", data={"name": "ada"},
                            files=[("photos", ("big.jpg", b"\xff\xd8" + b"0" * (20 * 2**20), "image/jpeg"))])
    assert big_photo.status_code == 413  # past the JSON limit: the upload's own per-photo check answers
    assert big_photo.json()["message"] == "big.jpg: photos are limited to 20 MB"
    assert system.recognition.enrolled_files == []
