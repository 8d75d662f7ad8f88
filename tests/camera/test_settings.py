"""`smartlock camera` flags come from CameraSettings: defaults, limits, and argv for `up`'s child."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from smartlock.camera.settings import CameraSettings
from smartlock.errors import ConfigError


def parse(argv: list[str]) -> CameraSettings:
    parser = argparse.ArgumentParser(exit_on_error=False)
    CameraSettings.add_options(parser)
    return CameraSettings.from_args(parser.parse_args(argv))


def test_defaults_are_the_models() -> None:
    settings = parse([])
    assert settings == CameraSettings()
    assert (settings.fps, settings.quality, settings.rotation, settings.port) == (24.0, 80, 0, 80)
    assert settings.source is None and settings.token_file is None and settings.host == "0.0.0.0"


def test_flags_fill_the_model_and_round_trip_as_argv() -> None:
    argv = ["--source", "0", "--width", "640", "--fps", "12.5", "--quality", "70", "--rotation", "90",
            "--host", "127.0.0.1", "--port", "8081", "--token-file", "/s/camera-token"]
    settings = parse(argv)
    assert settings.width == 640 and settings.height is None and settings.fps == 12.5
    assert settings.rotation == 90 and settings.token_file == Path("/s/camera-token")
    assert parse(settings.to_argv()) == settings


@pytest.mark.parametrize("values", [{"quality": 101}, {"fps": 0}, {"rotation": 45}, {"width": 0}])
def test_limits_hold_for_code_too(values: dict) -> None:
    with pytest.raises(ConfigError):
        CameraSettings.validated(**values)


def test_auth_and_tls_flags() -> None:
    settings = parse(["--no-auth", "--tls-cert", "/c/cert.pem", "--tls-key", "/c/key.pem",
                      "--source", "http://other:8081/stream.mjpg", "--source-token-file", "/s/upstream"])
    assert settings.no_auth and settings.tls and settings.tls_key == Path("/c/key.pem")
    assert settings.source_token_file == Path("/s/upstream")
    assert parse(settings.to_argv()) == settings
    assert not CameraSettings().no_auth and not CameraSettings().tls
    with pytest.raises(ConfigError, match="contradict"):
        CameraSettings.validated(no_auth=True, token_file=Path("/s/camera-token"))
    with pytest.raises(ConfigError, match="go together"):
        CameraSettings.validated(tls_cert=Path("/c/cert.pem"))
