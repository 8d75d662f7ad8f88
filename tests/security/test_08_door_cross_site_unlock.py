"""Row 8: a web page cannot open a ``--no-auth`` door, whatever the visitor's browser can reach.

A page on another site can make a browser send "simple" requests without asking the door first: a
body-less POST (fetch no-cors, an image beacon), a text/plain fetch, a form post. Against a real uvicorn
(MockFactory relay) and a real `smartlock door --no-auth` process, each gets 403 (foreign ``Origin``, or
no proof it is not a simple request) or 415 (a simple content type), the pin never leaves its locked
level, and the refusal is in the audit. Each attack comes from its own loopback address, so its audit
row is its own. What the engine and dashboard send (DoorClient: ``X-Smartlock-Request: 1``), a JSON
body, and any signed request still open the door.
"""

from __future__ import annotations

import httpx
import pytest

from smartlock.door.auth import generate_secret, sign_request
from smartlock.door.client import DoorClient
from tests.door.helpers import client_from, door_server, levels
from tests.support import LOOPBACK, free_port, service_process, wait_for

EVIL = "http://evil.example"
FORM = "application/x-www-form-urlencoded"

# (name, method, path, headers(own origin), body, expected status)
ATTACKS = [
    ("body-less POST from a page", "POST", "/unlock", lambda own: {"Origin": EVIL}, b"", 403),
    ("body-less POST, Origin stripped", "POST", "/unlock", lambda own: {}, b"", 403),
    ("text/plain fetch, no Origin", "POST", "/unlock", lambda own: {"Content-Type": "text/plain"},
     b'{"person": "mallory"}', 415),
    ("form post, no Origin", "POST", "/unlock", lambda own: {"Content-Type": FORM}, b"person=mallory", 415),
    ("multipart form, no Origin", "POST", "/unlock",
     lambda own: {"Content-Type": "multipart/form-data; boundary=x"}, b"--x--\r\n", 415),
    ("form post from a page", "POST", "/unlock", lambda own: {"Origin": EVIL, "Content-Type": FORM},
     b"person=mallory", 403),
    ("JSON but a foreign Origin", "POST", "/unlock",
     lambda own: {"Origin": EVIL, "Content-Type": "application/json"}, b"{}", 403),
    ("custom header but a foreign Origin", "POST", "/unlock",
     lambda own: {"Origin": EVIL, "X-Smartlock-Request": "1"}, b"", 403),
    ("sandboxed page: Origin null", "POST", "/unlock", lambda own: {"Origin": "null"}, b"", 403),
    ("look-alike origin", "POST", "/unlock", lambda own: {"Origin": own + ".evil.example"}, b"", 403),
    ("body-less POST /lock", "POST", "/lock", lambda own: {}, b"", 403),
    ("reading /status from a page", "GET", "/status", lambda own: {"Origin": EVIL}, b"", 403),
    # DNS rebinding: the attacker's name now points at the door, so its page is "same-origin"
    ("rebound name, JSON", "POST", "/unlock",
     lambda own: {"Host": "rebind.evil.example", "Origin": "http://rebind.evil.example",
                  "Content-Type": "application/json"}, b"{}", 403),
    ("rebound name, custom header", "POST", "/unlock",
     lambda own: {"Host": "rebind.evil.example", "Origin": "http://rebind.evil.example",
                  "X-Smartlock-Request": "1"}, b"", 403),
]


@pytest.fixture(scope="module")
def no_auth_door(tmp_path_factory):
    with door_server(tmp_path_factory.mktemp("door"), no_auth=True, lock_delay=0.3) as server:
        yield server


@pytest.mark.parametrize(("number", "name", "method", "path", "headers", "body", "expected"),
                         [(i, *attack) for i, attack in enumerate(ATTACKS)], ids=[a[0] for a in ATTACKS])
def test_cross_site_requests_are_refused_and_audited(no_auth_door, number, name, method, path, headers, body,
                                                     expected):
    server = no_auth_door
    address = f"127.0.8.{number + 10}"  # one source address per attack: its audit row is its own
    before = server.events.count()
    server.pin.clear_states()
    with client_from(server.url, address) as attacker:
        response = attacker.request(method, path, content=body, headers=headers(server.url))
    assert response.status_code == expected, response.text
    assert levels(server.pin) == [True], "the relay moved"
    assert server.events.count() == before + 1
    row = server.events.page(limit=1)[0]
    assert (row["client"], row["outcome"], row["status"]) == (address, "refused", expected)
    assert row["method"] == method
    assert row["door"] == "locked" and row["pin_level"] == "HIGH" and row["reason"]


def test_a_browser_preflight_is_never_approved(no_auth_door):
    response = no_auth_door.http.options("/unlock", headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-smartlock-request"})
    assert response.status_code >= 400
    assert not any(name.lower().startswith("access-control-") for name in response.headers)


def test_what_the_seed_clients_send_still_opens_the_door(no_auth_door):
    server = no_auth_door
    own = server.url
    for headers, body in [({"X-Smartlock-Request": "1"}, b""),  # DoorClient without a secret
                          ({"Content-Type": "application/json"}, b'{"person": "alice"}'),
                          ({"Content-Type": "application/json; charset=utf-8"}, b""),
                          ({"Origin": own, "X-Smartlock-Request": "1"}, b"")]:  # the door's own page
        wait_for(lambda: server.pin.state, what="the relock")
        server.pin.clear_states()
        assert server.http.post("/unlock", content=body, headers=headers).status_code == 202
        assert levels(server.pin) == [True, False]
    wait_for(lambda: server.pin.state, what="the relock")
    server.pin.clear_states()
    with DoorClient(f"{own}/unlock", None, timeout=5.0) as client:  # what the engine and `up` send
        client.unlock(person="alice", confidence=0.9, source="engine")
        assert client.lock() is None
    assert levels(server.pin) == [True, False, True]


def test_signed_requests_need_no_custom_header(tmp_path):
    with door_server(tmp_path, lock_delay=30.0) as server:
        server.pin.clear_states()
        headers = sign_request(server.secret, "POST", "/unlock", b"")  # body-less, no content type
        assert server.http.post("/unlock", headers=headers).status_code == 202
        assert levels(server.pin) == [True, False]


def test_a_no_auth_door_process_refuses_a_page_and_opens_for_its_client(tmp_path):
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    generate_secret(tmp_path / "unused.secret")
    args = ["door", "-p", "11", "--pin-factory", "mock", "--host", LOOPBACK, "--port", str(port), "--no-auth",
            "--lock-delay", "30", "--events-db", str(tmp_path / "events.sqlite3")]
    with service_process(args, f"{url}/health"):
        page = httpx.post(f"{url}/unlock", headers={"Origin": EVIL}, timeout=5.0)
        assert page.status_code == 403 and "cross-site" in page.json()["message"]
        form = httpx.post(f"{url}/unlock", data={"person": "mallory"}, timeout=5.0)
        assert form.status_code == 415
        with DoorClient(f"{url}/unlock", None, timeout=5.0) as client:
            status = client.status()
            assert status["locked"] is True and status["last_unlock"] is None
            events = client.events()["events"]
            assert [(e["status"], e["outcome"]) for e in events[:2]] == [(415, "refused"), (403, "refused")]
            client.unlock(person="alice", source="engine")
            assert client.status()["locked"] is False
