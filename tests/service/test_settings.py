"""PartSettings: flags made from fields, validated into a model, and turned back into argv for a child."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field

from smartlock.config import PartSettings
from smartlock.errors import ConfigError


class Sample(PartSettings):
    pin: int = Field(..., ge=1, le=40, description="BOARD pin", json_schema_extra={"short": "-p"})
    lock_delay: float = Field(3.0, gt=0, le=600, description="seconds unlocked")
    secret_file: Path | None = Field(None, description="door secret")
    pin_factory: Literal["auto", "mock"] = Field("auto", description="pin library")
    no_auth: bool = Field(False, description="accept unsigned requests")
    mirror: bool = Field(
        True, description="flip frames", json_schema_extra={"negate": True, "flag": "--no-mirror"}
    )


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(exit_on_error=False)
    for name in Sample.model_fields:
        Sample.add_option(result, name)
    return result


def test_defaults_limits_and_help_come_from_the_model() -> None:
    args = parser().parse_args(["-p", "7"])
    settings = Sample.from_args(args)
    assert settings == Sample(pin=7)
    text = parser().format_help()
    assert "seconds unlocked (default: 3.0)" in text
    assert "{auto,mock}" in text


def test_bad_values_name_the_flag() -> None:
    args = parser().parse_args(["--pin", "7", "--lock-delay", "0"])
    with pytest.raises(ConfigError, match="--lock-delay: Input should be greater than 0"):
        Sample.from_args(args)
    with pytest.raises(ConfigError, match="--pin"):
        Sample.from_args(parser().parse_args(["--pin", "99"]))


def test_unknown_settings_are_errors() -> None:
    with pytest.raises(ConfigError, match="lock_dealy"):
        Sample.validated(pin=7, lock_dealy=2)


def test_argv_round_trip_leaves_defaults_out() -> None:
    settings = Sample(pin=11, lock_delay=4.5, secret_file=Path("/s/door"), pin_factory="mock", no_auth=True,
                      mirror=False)
    argv = settings.to_argv()
    assert argv == ["--pin", "11", "--lock-delay", "4.5", "--secret-file", "/s/door", "--pin-factory", "mock",
                    "--no-auth", "--no-mirror"]
    assert Sample.from_args(parser().parse_args(argv)) == settings
    assert Sample(pin=3).to_argv() == ["--pin", "3"]
