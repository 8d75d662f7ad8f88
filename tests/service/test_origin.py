"""The Origin guard: a web page of another site cannot enroll or remove people, with or without the key."""

from __future__ import annotations

import httpx
import pytest

from smartlock.recognition.api import create_app
from smartlock.service.origin import browser_may_be_rebound, same_origin
from tests.recognition_api.fakes import FakeRecognizer
from tests.recognition_api.media import solid_jpeg
from tests.support import uvicorn_server

PHOTO = solid_jpeg((20, 60, 200))
FOREIGN = ("http://evil.example", "null", "http://127.0.0.1.evil.example", "https://127.0.0.1",
           "http://127.0.0.1:1", "file://", "http://127.0.0.1:{port}/path", "http://user@127.0.0.1:{port}")


def scope(origin: str | None, host: str, scheme: str = "http") -> dict:
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin is not None else [])
    return {"type": "http", "scheme": scheme, "headers": headers}


@pytest.mark.parametrize(("origin", "host", "scheme", "same"), [
    (None, "lock:5000", "http", True),  # curl, the engine, the dashboard's server-side client
    ("http://lock:5000", "lock:5000", "http", True),
    ("HTTP://LOCK:5000", "lock:5000", "http", True),
    ("http://lock", "lock:80", "http", True),  # default ports are left out of Origin
    ("https://lock", "lock", "https", True),
    ("http://[::1]:5000", "[::1]:5000", "http", True),
    ("http://lock:5000", "lock:5000", "https", False),  # another scheme is another origin
    ("http://lock:5001", "lock:5000", "http", False),
    ("http://evil.example", "lock:5000", "http", False),
    ("null", "lock:5000", "http", False),
    ("", "lock:5000", "http", False),
    ("http://lock:5000", "", "http", False),
    ("http://lock:99999", "lock:99999", "http", False),
    ("http://lock:5000/", "lock:5000", "http", False),
])
def test_same_origin(origin: str | None, host: str, scheme: str, same: bool) -> None:
    assert same_origin(scope(origin, host, scheme)) is same


@pytest.mark.parametrize("api_key", ["k", None])
def test_a_foreign_origin_changes_nothing(api_key: str | None) -> None:
    recognizer = FakeRecognizer()
    key = {"X-API-Key": api_key} if api_key else {}
    with uvicorn_server(create_app(recognizer, api_key=api_key)) as url, \
            httpx.Client(base_url=url, headers=key, timeout=30) as http:
        port = url.rsplit(":", 1)[1]
        assert http.post("/people/bob/images", files={"images": PHOTO}).json()["enrolled"] == 1
        before = http.get("/people").json()
        for origin in (o.format(port=port) for o in FOREIGN):
            for method, path, kwargs in (
                ("POST", "/people/alice/images", {"files": {"images": PHOTO}}),
                ("DELETE", "/people/bob", {}),
                ("DELETE", f"/people/bob/images/{before['people'][0]['images'][0]['image_id']}", {}),
                ("POST", "/face-recognition", {"files": {"image": PHOTO}}),
            ):
                response = http.request(method, path, headers={"Origin": origin}, **kwargs)
                assert response.status_code == 403, (origin, method, path, response.text)
                assert "cross-site request refused" in response.json()["message"]
        assert http.get("/people").json() == before
        assert recognizer.calls.count("recognize") == 0
        # reading needs no Origin check (a page cannot send the key, and CORS is never granted)
        assert http.get("/people", headers={"Origin": "http://evil.example"}).json() == before
        own = http.post("/people/alice/images", files={"images": PHOTO}, headers={"Origin": url})
        assert own.json()["enrolled"] == 1  # the server's own pages (Swagger UI at /docs) still work
        assert http.delete("/people/alice", headers={"Origin": url}).status_code == 200


def test_the_key_is_checked_before_the_origin() -> None:
    """A stranger's cross-site form post gets 401, as any keyless request: the 403 tells nothing new."""
    with uvicorn_server(create_app(FakeRecognizer(), api_key="k")) as url:
        response = httpx.post(f"{url}/people/alice/images", files={"images": PHOTO},
                              headers={"Origin": "http://evil.example"})
        assert response.status_code == 401


def test_openapi_documents_the_refusal() -> None:
    with uvicorn_server(create_app(FakeRecognizer(), api_key="k")) as url:
        paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    assert "403" in paths["/people/{name}/images"]["post"]["responses"]
    assert "403" in paths["/people/{name}"]["delete"]["responses"]
    assert "403" not in paths["/people"]["get"]["responses"]


def rebinding_scope(host: str, origin: str | None) -> dict:
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin else [])
    return {"type": "http", "scheme": "http", "headers": headers}


@pytest.mark.parametrize(
    ("host", "origin", "rebound"),
    [
        ("attacker.example", "http://attacker.example", True),  # rebinding: same-origin, foreign name
        ("door.evil.example:8080", "http://door.evil.example:8080", True),
        ("192.168.1.20", "http://192.168.1.20", False),  # a browser on the door's own address
        ("[::1]:8080", "http://[::1]:8080", False),
        ("localhost:80", "http://localhost", False),
        ("attacker.example", None, False),  # no browser: curl, the engine, the dashboard's client
    ],
)
def test_browser_requests_to_a_foreign_host_name_are_rebinding(host: str, origin: str | None,
                                                                rebound: bool) -> None:
    assert browser_may_be_rebound(rebinding_scope(host, origin)) is rebound


def test_this_machines_own_name_is_trusted() -> None:
    import socket

    name = socket.gethostname()
    assert browser_may_be_rebound(rebinding_scope(f"{name}:80", f"http://{name}")) is False
