"""The Door API on a real uvicorn (127.0.0.1) with a MockFactory relay: unlock, relock, refusals, audit."""

from __future__ import annotations

import json
import logging
import sqlite3
import time

import httpx
import pytest

from smartlock.door.auth import HEADER_SIGNATURE, DoorSecret, sign_request
from smartlock.door.events import EventLog
from smartlock.door.ratelimit import RefusalLimiter
from smartlock.service import Health
from tests.door.helpers import assert_one_opening, door_server, levels
from tests.support import ManualClock, wait_for

DELAY = 0.3


def last_event(server) -> dict:
    return server.events.page(limit=1)[0]


def test_signed_unlock_opens_and_relocks_on_time(tmp_path):
    delay = 1.0  # long enough that the checks made while it is open cannot come after the relock
    with door_server(tmp_path, lock_delay=delay) as server:
        pin = server.pin
        pin.clear_states()
        body = json.dumps({"person": "alice", "confidence": 0.93, "source": "engine"}).encode()
        response = server.signed("POST", "/unlock", body)
        assert response.status_code == 202
        assert response.json() == {"status": "unlocked", "locked": False, "seconds_left": delay}
        assert pin.state is False  # LOW = unlocked, already when the 202 arrives

        status = server.signed("GET", "/status").json()
        assert status["locked"] is False and 0 < status["seconds_left"] <= delay
        assert status["relay"]["level"] == "LOW" and status["relay"]["pin_name"] == "BOARD11"

        wait_for(lambda: pin.state, timeout=delay + 5)
        assert_one_opening(pin, delay)

        status = server.signed("GET", "/status").json()
        assert status["locked"] is True and status["seconds_left"] == 0
        assert status["last_unlock"]["person"] == "alice"
        assert status["last_unlock"]["key_id"] == server.secret.key_id

        wait_for(lambda: last_event(server)["action"] == "relock")
        newest_first = server.events.page(limit=3)
        assert [(e["action"], e["outcome"]) for e in newest_first[:2]] == [("relock", "info"),
                                                                           ("unlock", "accepted")]
        accepted = newest_first[1]
        assert accepted["person"] == "alice" and accepted["confidence"] == 0.93
        assert accepted["source"] == "engine" and accepted["client"] == "127.0.0.1"
        assert accepted["door"] == "unlocked" and accepted["pin_level"] == "LOW"


def test_unlock_while_open_extends_the_window(tmp_path):
    delay = 1.5  # the second unlock, 0.25 s after the first, must come while the door is open
    with door_server(tmp_path, lock_delay=delay) as server:
        pin = server.pin
        pin.clear_states()
        sent_first = time.monotonic()
        assert server.signed("POST", "/unlock").status_code == 202
        got_first = time.monotonic()
        door = server.app.state.service.door
        wait_for(lambda: door.seconds_left() <= delay - 0.25, what="the window to run 0.25 s")
        sent_second = time.monotonic()
        assert server.signed("POST", "/unlock").status_code == 202
        got_second = time.monotonic()
        assert pin.state is False
        wait_for(lambda: pin.state, timeout=delay + 5)
        # one opening, not two, ending `delay` after the second unlock (bounds from the measured times)
        assert_one_opening(pin, sent_second - got_first + delay, got_second - sent_first + delay)


def test_lock_closes_the_door_now(tmp_path):
    with door_server(tmp_path, lock_delay=5.0) as server:
        pin = server.pin
        pin.clear_states()
        assert server.signed("POST", "/unlock").status_code == 202
        response = server.signed("POST", "/lock")
        assert response.status_code == 200 and response.json()["locked"] is True
        assert levels(pin) == [True, False, True]
        assert server.signed("GET", "/status").json()["seconds_left"] == 0
        assert last_event(server)["action"] == "lock"


def test_replayed_request_is_refused(tmp_path):
    with door_server(tmp_path, lock_delay=DELAY) as server:
        pin = server.pin
        captured = server.http.build_request(
            "POST", "/unlock", content=b"{}", headers=sign_request(server.secret, "POST", "/unlock", b"{}")
        )
        assert server.http.send(captured).status_code == 202
        wait_for(lambda: last_event(server)["action"] == "relock", timeout=DELAY + 5)  # written after the pin
        pin.clear_states()
        response = server.http.post("/unlock", content=captured.content, headers=captured.headers)
        assert response.status_code == 401
        assert "replayed" in response.json()["message"]
        assert levels(pin) == [True]
        event = last_event(server)
        assert (event["outcome"], event["status"], event["key_id"]) == ("refused", 401, server.secret.key_id)


BIG = b'{"person": "' + b"x" * (64 * 1024) + b'"}'


def _chunks():
    for _ in range(20):
        yield b"x" * 8192


def _other_secret(server) -> DoorSecret:
    return DoorSecret(server.secret.key_id, b"not the door's key, 32 bytes...")


# (name, method, path, headers(server) or None for unsigned, body, expected status)
REFUSALS = [
    ("no signature", "POST", "/unlock", None, b"", 401),
    ("wrong signature", "POST", "/unlock",
     lambda s: {**sign_request(s.secret, "POST", "/unlock", b""), HEADER_SIGNATURE: "0" * 64}, b"", 401),
    ("signed with another key", "POST", "/unlock",
     lambda s: sign_request(_other_secret(s), "POST", "/unlock", b""), b"", 401),
    ("unknown key id", "POST", "/unlock",
     lambda s: sign_request(DoorSecret("stranger", s.secret.key), "POST", "/unlock", b""), b"", 401),
    ("timestamp 31 s old", "POST", "/unlock",
     lambda s: sign_request(s.secret, "POST", "/unlock", b"", timestamp=int(time.time()) - 31), b"", 401),
    ("timestamp 31 s ahead", "POST", "/unlock",
     lambda s: sign_request(s.secret, "POST", "/unlock", b"", timestamp=int(time.time()) + 31), b"", 401),
    ("signature of /lock sent to /unlock", "POST", "/unlock",
     lambda s: sign_request(s.secret, "POST", "/lock", b""), b"", 401),
    ("body changed after signing", "POST", "/unlock",
     lambda s: sign_request(s.secret, "POST", "/unlock", b'{"person":"al"}'), b'{"person":"eve"}', 401),
    ("malformed JSON", "POST", "/unlock", lambda s: sign_request(s.secret, "POST", "/unlock", b"{nope"),
     b"{nope", 400),
    ("JSON that is not an object", "POST", "/unlock",
     lambda s: sign_request(s.secret, "POST", "/unlock", b"[1, 2]"), b"[1, 2]", 400),
    ("confidence above 1", "POST", "/unlock",
     lambda s: sign_request(s.secret, "POST", "/unlock", b'{"confidence":2}'), b'{"confidence":2}', 422),
    ("unknown field", "POST", "/unlock",
     lambda s: sign_request(s.secret, "POST", "/unlock", b'{"duration": 600}'), b'{"duration": 600}', 422),
    ("body over 64 KB", "POST", "/unlock",
     lambda s: sign_request(s.secret, "POST", "/unlock", BIG), BIG, 413),
    ("body over 64 KB, chunked", "POST", "/unlock", None, "chunked", 413),
    ("GET /unlock", "GET", "/unlock", None, b"", 405),
    ("PUT /unlock", "PUT", "/unlock", lambda s: sign_request(s.secret, "PUT", "/unlock", b""), b"", 405),
    ("DELETE /lock", "DELETE", "/lock", None, b"", 405),
    ("unsigned /lock", "POST", "/lock", None, b"", 401),
    ("unsigned /status", "GET", "/status", None, b"", 401),
    ("unsigned /events", "GET", "/events", None, b"", 401),
    ("bad /events limit", "GET", "/events?limit=abc",
     lambda s: sign_request(s.secret, "GET", "/events?limit=abc", b""), b"", 422),
    ("unknown path", "POST", "/open-sesame", None, b"", 404),
    ("trailing slash", "POST", "/unlock/",
     lambda s: sign_request(s.secret, "POST", "/unlock/", b""), b"", 404),
]


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    with door_server(tmp_path_factory.mktemp("door"), lock_delay=DELAY) as server:
        yield server


@pytest.mark.parametrize(("name", "method", "path", "headers", "body", "expected"), REFUSALS,
                         ids=[case[0] for case in REFUSALS])
def test_refusals_get_4xx_and_never_touch_the_relay(shared_server, name, method, path, headers, body,
                                                    expected):
    server = shared_server
    server.pin.clear_states()
    content = _chunks() if body == "chunked" else body
    signature = headers(server) if headers else None
    response = server.http.request(method, path, content=content, headers=signature)
    assert response.status_code == expected, response.text
    assert response.json()["message"]
    assert levels(server.pin) == [True], "the relay moved"
    event = last_event(server)
    assert (event["outcome"], event["status"], event["method"]) == ("refused", expected, method)
    assert event["client"] == "127.0.0.1" and event["reason"]
    assert event["door"] == "locked" and event["pin_level"] == "HIGH"
    if expected == 401:
        assert response.headers["www-authenticate"] == "Smartlock-HMAC-SHA256"


def test_public_endpoints_need_no_signature(shared_server):
    assert shared_server.http.get("/health").json() == Health.of("door").model_dump()  # no door data
    assert "/unlock" in shared_server.http.get("/openapi.json").json()["paths"]


def test_eleven_refusals_block_the_address_for_a_minute(tmp_path):
    clock = ManualClock()
    with door_server(tmp_path, lock_delay=DELAY, limiter=RefusalLimiter(clock=clock)) as server:
        pin = server.pin
        for _ in range(11):
            assert server.http.post("/unlock").status_code == 401
        pin.clear_states()
        blocked = server.signed("POST", "/unlock")  # correctly signed, but from a blocked address
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) == 60
        assert server.http.get("/health").status_code == 429
        assert levels(pin) == [True]
        block = last_event(server)
        assert (block["action"], block["client"]) == ("block", "127.0.0.1")

        # another address is not affected (a real second source address on the loopback)
        other = httpx.Client(base_url=server.url, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        with other:
            headers = sign_request(server.secret, "POST", "/lock", b"")
            assert other.post("/lock", headers=headers).status_code == 200
        assert server.events.page(limit=1)[0]["client"] == "127.0.0.2"

        clock.now += 61
        assert server.signed("POST", "/unlock").status_code == 202
        assert pin.state is False


def test_relay_failure_answers_503_and_is_audited(tmp_path):
    with door_server(tmp_path, lock_delay=DELAY) as server:
        server.pin.function = "input"  # the pin can no longer be driven
        response = server.signed("POST", "/unlock", b'{"person": "bob"}')
        assert response.status_code == 503
        assert "stays locked" in response.json()["message"]
        event = last_event(server)
        assert (event["action"], event["outcome"], event["status"], event["person"]) == (
            "unlock", "error", 503, "bob")
        assert "cannot unlock" in event["reason"]
        assert server.signed("GET", "/status").json()["fault"]

        server.pin.function = "output"  # repaired
        assert server.signed("POST", "/lock").status_code == 200
        status = server.signed("GET", "/status").json()
        assert status["fault"] is None and status["locked"] is True


def test_audit_survives_a_restart(tmp_path):
    events_path = tmp_path / "events.sqlite3"
    secret_path = tmp_path / "door.secret"
    # The door is still open when the first server stops, so no relock row can slip in between.
    with door_server(tmp_path, events_path=events_path, secret_path=None, lock_delay=30.0) as first:
        secret_path = first.secret_path
        assert first.signed("POST", "/unlock", b'{"person": "carol", "source": "engine"}').status_code == 202
        assert first.http.post("/unlock").status_code == 401
    with door_server(tmp_path, events_path=events_path, secret_path=secret_path) as second:
        page = second.signed("GET", "/events?limit=50").json()
        actions = [(e["action"], e["outcome"]) for e in page["events"]]
        assert actions == [("start", "info"), ("stop", "info"), ("unlock", "refused"), ("unlock", "accepted"),
                           ("start", "info")]
        assert page["events"][3]["person"] == "carol"
        assert page["events"][1]["door"] == "locked" and page["events"][1]["pin_level"] == "HIGH"
        assert second.signed("GET", "/status").json()["last_unlock"]["person"] == "carol"


def test_events_are_paged_newest_first(tmp_path):
    with door_server(tmp_path, lock_delay=5.0) as server:
        for person in ("p1", "p2", "p3"):
            server.signed("POST", "/unlock", json.dumps({"person": person}).encode())
        first = server.signed("GET", "/events?limit=2").json()
        assert [e["person"] for e in first["events"]] == ["p3", "p2"]
        second = server.signed("GET", f"/events?limit=2&before={first['next_before']}").json()
        assert [e["person"] for e in second["events"]] == ["p1", None]  # p1, then the start event
        assert second["events"][1]["action"] == "start"


def test_no_auth_accepts_unsigned_unlocks_and_warns_every_time(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="smartlock.door"), \
            door_server(tmp_path, no_auth=True, lock_delay=30.0) as server:
        assert "AUTHENTICATION IS OFF" in caplog.text
        assert server.http.post("/unlock").status_code == 403  # a body-less POST: a web page could send it
        assert server.pin.state is True
        for _ in range(2):  # what DoorClient sends unsigned: the custom header, no body
            assert server.http.post("/unlock", headers={"X-Smartlock-Request": "1"}).status_code == 202
        assert caplog.text.count("UNSIGNED unlock accepted") == 2
        assert server.http.get("/status").json()["auth"].startswith("none")
        assert server.pin.state is False


def test_api_docs_are_served_offline_and_need_no_signature(tmp_path):
    with door_server(tmp_path) as server:
        page = httpx.get(f"{server.url}/docs", timeout=30)
        assert page.status_code == 200
        assert "/docs/assets/swagger-ui-bundle.js" in page.text and "cdn" not in page.text.lower()
        script = httpx.get(f"{server.url}/docs/assets/swagger-ui-bundle.js", timeout=30)
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")


class _UnreadableAfterUnlock(EventLog):
    """An audit whose read-back fails once the door is running (writes still work)."""

    broken = False

    def last(self, action: str, outcome: str):  # type: ignore[no-untyped-def]
        if self.broken:
            raise sqlite3.OperationalError("disk I/O error")
        return super().last(action, outcome)


def test_an_unlock_that_happened_is_answered_202_even_when_the_audit_cannot_be_read_back(tmp_path):
    events = _UnreadableAfterUnlock(tmp_path / "events.sqlite3")
    with door_server(tmp_path, events=events, lock_delay=5.0) as server:
        events.broken = True
        server.pin.clear_states()
        response = server.signed("POST", "/unlock", b"")
        assert response.status_code == 202  # a 500 would make the client unlock again
        assert levels(server.pin) == [True, False]  # locked, then opened exactly once
        accepted = [e for e in server.events.page(limit=5) if e["action"] == "unlock"]
        assert accepted[0]["outcome"] == "accepted"
