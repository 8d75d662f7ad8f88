"""Fixtures shared by every part's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from smartlock.config import faces_dir as locate_faces_dir


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The labelled photos of ``../shared/faces`` (or ``SMARTLOCK_FACES_DIR``); skips when absent."""
    path = locate_faces_dir()
    if path is None:
        pytest.skip("face photos not found: set SMARTLOCK_FACES_DIR or put them at ../shared/faces")
    return path


@pytest.fixture(scope="session", autouse=True)
def private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every part a test starts keeps its generated secrets and data in a folder of the test run, never
    in the user's real data directory (``SMARTLOCK_DATA_DIR`` is inherited by child processes too)."""
    import os

    path = tmp_path_factory.mktemp("smartlock-data")
    previous = os.environ.get("SMARTLOCK_DATA_DIR")
    os.environ["SMARTLOCK_DATA_DIR"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("SMARTLOCK_DATA_DIR", None)
    else:
        os.environ["SMARTLOCK_DATA_DIR"] = previous
