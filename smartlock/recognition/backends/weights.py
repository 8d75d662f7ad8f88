"""Locating model files inside installed packages without importing them, and checking their sha256."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from smartlock.errors import DependencyMissing, ModelCorrupt


def package_dir(package: str, purpose: str, install: str) -> Path:
    """The folder of an installed package, found without importing it (importing may be costly)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DependencyMissing(package, purpose, install)
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_verified(path: Path, expected_sha256: str | None) -> tuple[bytes, str]:
    """Read a weights file and check it against ``expected_sha256`` (None: user-supplied, recorded only).

    Returns the bytes and their sha256, so the caller loads exactly the bytes that were checked.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ModelCorrupt(f"cannot read model file {path}: {err.strerror or err}") from None
    digest = sha256_bytes(data)
    if expected_sha256 is not None and digest != expected_sha256:
        raise ModelCorrupt(
            f"model file {path} failed its integrity check: sha256 {digest}, expected {expected_sha256}; "
            "reinstall the package that ships it"
        )
    return data, digest
