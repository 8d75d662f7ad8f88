"""Fixtures shared by every part's tests."""

from __future__ import annotations

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
