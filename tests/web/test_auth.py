"""Password hashing, the password file, setup tokens, sessions and login throttling."""

from __future__ import annotations

import json
import os
import stat

import pytest

from smartlock.errors import ConfigError
from smartlock.web.auth import (
    LoginThrottle,
    PasswordStore,
    SessionStore,
    SetupToken,
    hash_password,
    read_password_file,
    verify_password,
)
from tests.support import ManualClock


def test_hash_verifies_only_the_same_password_and_salts_differ() -> None:
    record = hash_password("s3cret-passphrase")
    assert record["algorithm"] == "scrypt"
    assert verify_password("s3cret-passphrase", record)
    assert not verify_password("s3cret-passphrasf", record)
    assert not verify_password("", record)
    assert hash_password("s3cret-passphrase")["salt"] != record["salt"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: r.update(hash="00" * 32),
        lambda r: r.update(algorithm="md5"),
        lambda r: r.update(salt="not hex"),
        lambda r: r.pop("n"),
    ],
)
def test_a_damaged_record_never_verifies(tamper) -> None:
    record = hash_password("s3cret-passphrase")
    tamper(record)
    assert not verify_password("s3cret-passphrase", record)


def test_password_store_keeps_only_a_hash_in_a_private_file(tmp_path) -> None:
    store = PasswordStore(tmp_path / "web" / "password.json")
    assert not store.is_set()
    assert not store.verify("anything at all")
    store.set("correct horse battery")
    assert store.is_set()
    assert store.verify("correct horse battery")
    assert not store.verify("wrong horse battery")
    text = store.path.read_text()
    assert "correct horse" not in text
    (admin,) = json.loads(text)["accounts"].values()  # the password of the admin account "admin"
    assert admin["password"]["algorithm"] == "scrypt" and admin["role"] == "admin"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert [p.name for p in store.path.parent.iterdir()] == ["password.json"]  # no temp file left


def test_password_rules(tmp_path) -> None:
    store = PasswordStore(tmp_path / "password.json")
    with pytest.raises(ConfigError, match="at least 8"):
        store.set("short")
    with pytest.raises(ConfigError, match="at most"):
        store.set("x" * 2000)
    assert not store.is_set()


def test_a_corrupt_password_file_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "password.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="delete it"):
        PasswordStore(path).is_set()


def test_read_password_file(tmp_path) -> None:
    path = tmp_path / "pw"
    path.write_text("  spaces inside kept  \n")
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_password_file(path)
    os.chmod(path, 0o600)
    assert read_password_file(path) == "  spaces inside kept  "
    path.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        read_password_file(path)
    path.write_text("short\n")
    with pytest.raises(ConfigError, match="at least 8"):
        read_password_file(path)
    with pytest.raises(ConfigError, match="not found"):
        read_password_file(tmp_path / "missing")


def test_setup_token_is_single_use() -> None:
    setup = SetupToken()
    assert not setup.active
    assert not setup.consume("anything")
    token = setup.issue()
    assert setup.active and len(token) >= 30
    assert not setup.consume(token + "x")
    assert setup.check(token)
    assert setup.consume(token)
    assert not setup.consume(token)
    assert not setup.active


def test_sessions_expire_when_idle_and_when_old() -> None:
    clock = ManualClock()
    sessions = SessionStore(idle_timeout=100, max_age=250, clock=clock)
    token = sessions.create()
    assert sessions.check(token)
    assert not sessions.check(token + "x") and not sessions.check(None) and not sessions.check("")
    clock.advance(90)
    assert sessions.check(token)  # activity keeps it alive...
    clock.advance(90)
    assert sessions.check(token)
    clock.advance(90)  # ...but never past max_age
    assert not sessions.check(token)
    idle = sessions.create()
    clock.advance(101)
    assert not sessions.check(idle)
    assert len(sessions) == 0


def test_revoking_sessions() -> None:
    sessions = SessionStore()
    first, second = sessions.create(), sessions.create()
    assert first != second
    sessions.revoke(first)
    assert not sessions.check(first) and sessions.check(second)
    sessions.revoke_all()
    assert not sessions.check(second)


def test_login_throttle_blocks_an_address_for_the_window() -> None:
    clock = ManualClock()
    throttle = LoginThrottle(limit=3, window=60, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1") == 0
        throttle.failed("10.0.0.1")
    assert 0 < throttle.retry_after("10.0.0.1") <= 60
    assert throttle.retry_after("10.0.0.2") == 0  # other addresses are not affected
    clock.advance(61)
    assert throttle.retry_after("10.0.0.1") == 0
    throttle.failed("10.0.0.3")
    throttle.succeeded("10.0.0.3")
    assert throttle.retry_after("10.0.0.3") == 0




def test_attempts_in_flight_count_against_the_limit() -> None:
    clock = ManualClock()
    throttle = LoginThrottle(limit=3, window=60, clock=clock)
    assert [throttle.begin("10.0.0.1") for _ in range(3)] == [0, 0, 0]  # three checks running at once
    assert throttle.begin("10.0.0.1") > 0  # a fourth is not admitted before one of them ends
    assert throttle.begin("10.0.0.2") == 0
    throttle.end("10.0.0.1", succeeded=False)
    assert throttle.begin("10.0.0.1") > 0  # 1 failure + 2 in flight
    throttle.end("10.0.0.1", succeeded=False)
    throttle.end("10.0.0.1", succeeded=False)
    assert 1 < throttle.begin("10.0.0.1") <= 60  # three failures: the whole window
    clock.advance(61)
    assert throttle.begin("10.0.0.1") == 0
    throttle.end("10.0.0.1", succeeded=True)
    assert throttle.retry_after("10.0.0.1") == 0


def test_unencodable_text_is_refused_not_crashed_on(tmp_path) -> None:
    with pytest.raises(ConfigError, match="Unicode"):
        PasswordStore(tmp_path / "p.json").set("long enough \ud800")
    store = PasswordStore(tmp_path / "p.json")
    store.set("long enough")
    assert not store.verify("long enough\ud800")
    token = SetupToken()
    token.issue()
    assert not token.check("\ud800") and not token.consume("\ud800") and token.active
