"""The `smartlock recognition` command: flags, API key file, refusing a damaged model."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from smartlock.cli import build_parser
from smartlock.errors import ConfigError
from smartlock.recognition.service import read_api_key


def test_flags_and_defaults() -> None:
    args = build_parser().parse_args(["recognition"])
    assert (args.model, args.host, args.port, args.api_key_file) == (Path("model"), "0.0.0.0", 5000, None)
    args = build_parser().parse_args(
        ["recognition", "--model", "m", "--host", "127.0.0.1", "--port", "5001", "--api-key-file", "k"]
    )
    assert (args.model, args.host, args.port, args.api_key_file) == (Path("m"), "127.0.0.1", 5001, Path("k"))


def test_read_api_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = tmp_path / "key"
    key.write_text("  s3cret\n")
    key.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        assert read_api_key(key) == "s3cret"
    assert not caplog.records
    key.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        read_api_key(key)
    assert "chmod 600" in caplog.text
    key.write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        read_api_key(key)
    with pytest.raises(ConfigError, match="cannot read"):
        read_api_key(tmp_path / "missing")


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
    for args, message in (
        (["--api-key-file", str(empty_key)], "is empty"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--max-upload-mb", "0"], "--max-upload-mb"),
        (["--backend", "nope", "--model", str(tmp_path / "new")], "unknown recognition backend 'nope'"),
    ):
        result = run_command(*args)
        assert result.returncode == 2, args
        assert message in result.stderr, result.stderr
