"""The `smartlock recognition` command: flags, settings, API key file, refusing a damaged model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from smartlock.cli import build_parser
from smartlock.errors import ConfigError
from smartlock.recognition.settings import RecognitionSettings
from smartlock.service import read_secret


def test_flags_and_defaults() -> None:
    args = build_parser().parse_args(["recognition"])
    assert (args.model, args.host, args.port, args.api_key_file) == (Path("model"), "0.0.0.0", 5000, None)
    args = build_parser().parse_args(
        ["recognition", "--model", "m", "--host", "127.0.0.1", "--port", "5001", "--api-key-file", "k"]
    )
    assert (args.model, args.host, args.port, args.api_key_file) == (Path("m"), "127.0.0.1", 5001, Path("k"))


def test_flags_fill_the_settings_model() -> None:
    args = build_parser().parse_args(["recognition", "--threads", "2", "--max-upload-mb", "1.5",
                                      "--log-level", "debug", "--access-log"])
    settings = RecognitionSettings.from_args(args)
    assert (settings.threads, settings.max_upload_bytes, settings.log_level, settings.access_log) == (
        2, int(1.5 * 2**20), "DEBUG", True)
    assert settings.to_argv() == ["--threads", "2", "--max-upload-mb", "1.5", "--log-level", "DEBUG",
                                  "--access-log"]
    assert RecognitionSettings.from_args(build_parser().parse_args(["recognition"])) == RecognitionSettings()
    for bad, flag in (({"threads": 0}, "--threads"), ({"max_upload_mb": 2000}, "--max-upload-mb"),
                      ({"log_level": "loud"}, "--log-level"), ({"port": 0}, "--port")):
        with pytest.raises(ConfigError, match=flag):
            RecognitionSettings.validated(**bad)
    with pytest.raises(ConfigError, match="treads: Extra inputs are not permitted"):
        RecognitionSettings.validated(treads=2)


def test_the_api_key_file_must_be_private(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("  s3cret\n")
    key.chmod(0o600)
    assert read_secret(key, "API key file") == "s3cret"
    key.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_secret(key, "API key file")
    key.chmod(0o600)
    key.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        read_secret(key, "API key file")
    with pytest.raises(ConfigError, match="not found"):
        read_secret(tmp_path / "missing", "API key file")


def run_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smartlock", "recognition", *args],
                          capture_output=True, text=True, timeout=120)


def test_a_damaged_model_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "gallery.json").write_text("{not json")
    result = run_command("--model", str(tmp_path), "--port", "1")
    assert result.returncode == 2
    assert "gallery.json is corrupt" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_flags_are_refused(tmp_path: Path) -> None:
    empty_key = tmp_path / "key"
    empty_key.write_text("")
    empty_key.chmod(0o600)
    shared_key = tmp_path / "shared-key"
    shared_key.write_text("s3cret")
    shared_key.chmod(0o644)
    for args, message in (
        (["--api-key-file", str(empty_key)], "is empty"),
        (["--api-key-file", str(shared_key)], "chmod 600"),
        (["--threads", "0"], "--threads: Input should be greater than or equal to 1"),
        (["--max-upload-mb", "0"], "--max-upload-mb"),
        (["--backend", "nope", "--model", str(tmp_path / "new")], "unknown recognition backend 'nope'"),
    ):
        result = run_command(*args)
        assert result.returncode == 2, args
        assert message in result.stderr, result.stderr
