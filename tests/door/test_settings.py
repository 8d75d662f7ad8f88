"""DoorSettings and UnlockSettings: flags made from the models, limits checked, argv rebuilt for `up`."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartlock.cli import build_parser, main
from smartlock.door.settings import DEFAULT_LOCK_DELAY, MAX_LOCK_DELAY, DoorSettings, UnlockSettings
from smartlock.errors import ConfigError


def door_settings(*argv: str) -> DoorSettings:
    return DoorSettings.from_args(build_parser().parse_args(["door", *argv]))


def test_defaults_come_from_the_model():
    settings = door_settings()
    assert settings.lock_delay == DEFAULT_LOCK_DELAY == 3.0
    assert (settings.host, settings.port, settings.pin_factory, settings.log_level) == (
        "0.0.0.0", 80, "auto", "INFO")
    assert settings.pin is None and settings.secret_file is None and not settings.no_auth


def test_short_and_long_flags_fill_the_same_fields(tmp_path):
    settings = door_settings("-p", "11", "-d", "1.5", "--secret-file", str(tmp_path / "s"), "--active-high",
                             "--pin-factory", "mock", "--events-db", str(tmp_path / "e.db"))
    assert (settings.pin, settings.lock_delay, settings.active_high) == (11, 1.5, True)
    assert settings.secret_file == tmp_path / "s" and settings.events_db == tmp_path / "e.db"


def test_to_argv_gives_the_same_settings_back(tmp_path):
    settings = DoorSettings(pin=7, lock_delay=2.5, host="127.0.0.1", port=8081, secret_file=tmp_path / "s",
                            pin_factory="mock", log_level="DEBUG")
    argv = settings.to_argv()
    assert "--secret-file" in argv and str(tmp_path / "s") in argv
    assert door_settings(*argv) == settings


@pytest.mark.parametrize("delay", ["0", "-1", str(MAX_LOCK_DELAY + 1), "nan"])
def test_lock_delay_must_be_positive_and_at_most_ten_minutes(delay, capsys):
    assert main(["door", "-p", "11", "--no-auth", "-d", delay]) == 2
    assert "--lock-delay" in capsys.readouterr().err


@pytest.mark.parametrize("pin", ["0", "41"])
def test_pin_must_be_on_the_header(pin, capsys):
    assert main(["door", "-p", pin, "--no-auth"]) == 2
    assert "--pin" in capsys.readouterr().err


def test_a_misspelt_setting_is_an_error():
    with pytest.raises(ConfigError, match="lock_dealy"):
        DoorSettings.validated(lock_dealy=5)


def test_unlock_settings_check_confidence_and_auth(tmp_path):
    args = build_parser().parse_args(["unlock", "--door-api-url", "http://door/unlock", "--no-auth"])
    settings = UnlockSettings.from_args(args)
    assert (settings.source, settings.timeout, settings.tries) == ("cli", 2.0, 3)
    settings.check_complete()
    with pytest.raises(ConfigError, match="--confidence"):
        UnlockSettings.from_args(args, confidence=1.5)
    with pytest.raises(ConfigError, match="--secret-file"):
        UnlockSettings.from_args(args, secret_file=Path(tmp_path / "s")).check_complete()
