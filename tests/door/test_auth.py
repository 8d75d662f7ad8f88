"""Secret files and request signatures: what is accepted, and every way a request is refused."""

from __future__ import annotations

import os
import stat

import pytest

from smartlock.door.auth import (
    HEADER_KEY_ID,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    DoorSecret,
    RequestVerifier,
    generate_secret,
    load_secret,
    sign_request,
)
from smartlock.errors import AuthError, ConfigError
from tests.support import ManualClock

NOW = 1_800_000_000.0


def test_generated_secret_is_private_and_loads_back(tmp_path):
    path = tmp_path / "keys" / "door.secret"
    secret = generate_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(path) == secret
    assert len(secret.key) == 32
    assert secret.key.hex() not in repr(secret)
    assert [p.name for p in path.parent.iterdir()] == ["door.secret"]  # no temporary file left behind


def test_generate_never_overwrites(tmp_path, secret):
    path = tmp_path / "door.secret"
    with pytest.raises(ConfigError, match="already exists"):
        generate_secret(path)
    assert load_secret(path) == secret


def test_world_readable_secret_is_refused(tmp_path, secret):
    path = tmp_path / "door.secret"
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_secret(path)


@pytest.mark.parametrize("mode", [0o640, 0o620, 0o604, 0o610])
def test_group_or_other_accessible_secret_is_refused(tmp_path, secret, mode):
    path = tmp_path / "door.secret"
    os.chmod(path, mode)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_secret(path)


@pytest.mark.parametrize("content", ["", "{}", "not json", '{"key_id": "x y", "key": "AAAA"}',
                                     '{"key_id": "k", "key": "c2hvcnQ="}'])
def test_malformed_secret_files_are_config_errors(tmp_path, content):
    path = tmp_path / "bad.secret"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError):
        load_secret(path)


def test_missing_secret_file_says_how_to_create_one(tmp_path):
    with pytest.raises(ConfigError, match="--generate-secret"):
        load_secret(tmp_path / "nope")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def verifier(secret, clock) -> RequestVerifier:
    return RequestVerifier(secret, clock=clock)


def sign(secret: DoorSecret, method="POST", path="/unlock", body=b"", **kwargs) -> dict[str, str]:
    kwargs.setdefault("timestamp", int(NOW))
    return sign_request(secret, method, path, body, **kwargs)


def test_a_correctly_signed_request_is_accepted_once(verifier, secret):
    headers = sign(secret, body=b'{"person":"alice"}')
    assert verifier.verify("POST", "/unlock", headers, b'{"person":"alice"}') == secret.key_id
    with pytest.raises(AuthError, match="replayed"):
        verifier.verify("POST", "/unlock", headers, b'{"person":"alice"}')


def test_header_names_are_case_insensitive(verifier, secret):
    headers = {k.lower(): v for k, v in sign(secret).items()}
    assert verifier.verify("POST", "/unlock", headers, b"") == secret.key_id


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h: {}, "not signed"),
        (lambda h: {k: v for k, v in h.items() if k != HEADER_NONCE}, "missing signature header"),
        (lambda h: {**h, HEADER_SIGNATURE: "0" * 64}, "wrong signature"),
        (lambda h: {**h, HEADER_SIGNATURE: "zz"}, "64 lowercase hex"),
        (lambda h: {**h, HEADER_KEY_ID: "someone-else"}, "unknown key id"),
        (lambda h: {**h, HEADER_TIMESTAMP: "soon"}, "whole Unix seconds"),
        (lambda h: {**h, HEADER_NONCE: "short"}, "nonce"),
        (lambda h: {**h, HEADER_NONCE: "A" * 24}, "wrong signature"),  # nonce is covered by the signature
        (lambda h: {**h, HEADER_TIMESTAMP: str(int(NOW) + 1)}, "wrong signature"),
    ],
)
def test_tampered_headers_are_refused(verifier, secret, change, reason):
    with pytest.raises(AuthError, match=reason):
        verifier.verify("POST", "/unlock", change(sign(secret)), b"")


def test_a_repeated_signature_header_is_refused(verifier, secret):
    from starlette.datastructures import Headers

    signed = sign(secret)
    other = sign(secret)  # a second valid set: which copy a proxy forwards must not matter
    raw = [(k.lower().encode(), v.encode()) for k, v in signed.items()]
    raw.append((HEADER_NONCE.lower().encode(), other[HEADER_NONCE].encode()))
    with pytest.raises(AuthError, match="more than once"):
        verifier.verify("POST", "/unlock", Headers(raw=raw), b"")
    assert verifier.remembered_nonces() == 0


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/unlock", b""), ("POST", "/lock", b""), ("POST", "/unlock?x=1", b""),
     ("POST", "/unlock", b'{"person":"mallory"}')],
)
def test_signature_covers_method_path_query_and_body(verifier, secret, method, path, body):
    headers = sign(secret)  # signed for POST /unlock with an empty body
    with pytest.raises(AuthError, match="wrong signature"):
        verifier.verify(method, path, headers, body)


def test_another_secret_with_the_same_key_id_is_refused(verifier, secret):
    forged = DoorSecret(secret.key_id, b"x" * 32)
    with pytest.raises(AuthError, match="wrong signature"):
        verifier.verify("POST", "/unlock", sign(forged), b"")


@pytest.mark.parametrize("offset", [-31, 31, -3600])
def test_timestamps_outside_30_seconds_are_refused(verifier, secret, offset):
    with pytest.raises(AuthError, match="clock"):
        verifier.verify("POST", "/unlock", sign(secret, timestamp=int(NOW) + offset), b"")


@pytest.mark.parametrize("offset", [-30, -29, 29, 30])
def test_timestamps_inside_30_seconds_are_accepted(verifier, secret, offset):
    assert verifier.verify("POST", "/unlock", sign(secret, timestamp=int(NOW) + offset), b"")


def test_nonces_are_forgotten_only_after_the_window(verifier, secret, clock):
    headers = sign(secret)
    verifier.verify("POST", "/unlock", headers, b"")
    clock.now += 30  # still inside the window: remembered, the replay is refused as a replay
    with pytest.raises(AuthError, match="replayed"):
        verifier.verify("POST", "/unlock", headers, b"")
    clock.now += 2  # outside: the timestamp check refuses it, and the nonce may be forgotten
    with pytest.raises(AuthError, match="clock"):
        verifier.verify("POST", "/unlock", headers, b"")
    verifier.verify("POST", "/unlock", sign(secret, timestamp=int(clock.now)), b"")
    assert verifier.remembered_nonces() == 1


def test_refused_requests_never_reach_the_nonce_store(verifier, secret):
    for _ in range(5):
        with pytest.raises(AuthError):
            verifier.verify("POST", "/unlock", {**sign(secret), HEADER_SIGNATURE: "0" * 64}, b"")
    assert verifier.remembered_nonces() == 0


def test_nonce_store_is_bounded(secret, clock):
    verifier = RequestVerifier(secret, clock=clock, max_nonces=3)
    for _ in range(3):
        verifier.verify("POST", "/unlock", sign(secret), b"")
    with pytest.raises(AuthError, match="too many"):
        verifier.verify("POST", "/unlock", sign(secret), b"")
    clock.now += 32
    verifier.verify("POST", "/unlock", sign(secret, timestamp=int(clock.now)), b"")


def test_verifier_accepts_several_keys(tmp_path, clock):
    first, second = generate_secret(tmp_path / "a"), generate_secret(tmp_path / "b")
    verifier = RequestVerifier([first, second], clock=clock)
    assert verifier.verify("POST", "/unlock", sign(second), b"") == second.key_id
    assert verifier.key_ids == sorted([first.key_id, second.key_id])


def test_requests_signed_before_the_service_started_are_refused(secret, clock):
    captured = sign(secret, timestamp=int(NOW) - 5)  # captured, then the door restarted at NOW
    restarted = RequestVerifier(secret, clock=clock, not_before=NOW)
    with pytest.raises(AuthError, match="before the door service started"):
        restarted.verify("POST", "/unlock", captured, b"")
    clock.now += 2
    assert restarted.verify("POST", "/unlock", sign(secret, timestamp=int(clock.now)), b"")
