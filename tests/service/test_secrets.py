"""One policy for secret files: owner-only, refused otherwise with the fix in the message."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from smartlock.errors import ConfigError
from smartlock.service import ensure_secret, read_secret, write_secret


def test_owner_only_file_is_read_without_surrounding_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "key"
    write_secret(path, "s3cret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_secret(path) == "s3cret"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o620])
def test_group_or_other_accessible_file_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "key"
    path.write_text("s3cret\n")
    os.chmod(path, mode)
    with pytest.raises(ConfigError) as err:
        read_secret(path, "API key file")
    assert f"chmod 600 {path}" in str(err.value)
    assert "s3cret" not in str(err.value)


def test_missing_and_empty_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        read_secret(tmp_path / "absent")
    empty = tmp_path / "empty"
    write_secret(empty, "  ")
    with pytest.raises(ConfigError, match="empty"):
        read_secret(empty)


def test_ensure_secret_creates_once_then_reads(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "token"
    first, created = ensure_secret(path)
    assert created and len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again, created_again = ensure_secret(path)
    assert (again, created_again) == (first, False)


def test_concurrent_first_starts_agree_on_one_secret(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "token"
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: ensure_secret(path), range(32)))
    assert len({secret for secret, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert read_secret(path) == results[0][0]
    assert [p.name for p in tmp_path.iterdir()] == ["token"]  # no temporary file left
