"""Settings shared by the parts: a strict pydantic base, default folders and the face-data location."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

APP_NAME = "smartlock"


class StrictModel(BaseModel):
    """Base for every settings model: a misspelt setting is an error, never a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def default_data_dir() -> Path:
    """Where `smartlock up` keeps its gallery, events and secrets (``SMARTLOCK_DATA_DIR`` overrides)."""
    override = os.environ.get("SMARTLOCK_DATA_DIR")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


def project_root() -> Path:
    """The checkout this package runs from (used to find ``../shared/faces`` next to it)."""
    return Path(__file__).resolve().parent.parent


def faces_dir() -> Path | None:
    """The labelled face photos for tests and benchmarks, or None when they are not on this machine.

    ``SMARTLOCK_FACES_DIR`` overrides the default ``<checkout>/../shared/faces``.
    """
    override = os.environ.get("SMARTLOCK_FACES_DIR")
    path = Path(override).expanduser() if override else project_root().parent / "shared" / "faces"
    return path if (path / "people").is_dir() else None
