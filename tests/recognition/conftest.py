"""Real backends and a small enrolled gallery, built once per test session for each installed backend."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from smartlock.recognition.backends.base import BACKENDS, Backend, get_backend
from smartlock.recognition.recognizer import Recognizer

ENROLL = 3
PEOPLE = 3
STRANGERS = 15

_backends: dict[str, Backend | BaseException] = {}


def load_backend(name: str) -> Backend:
    """One instance per backend per session; skips when its packages are not installed."""
    if name not in _backends:
        try:
            _backends[name] = get_backend(name)
        except ImportError as err:
            _backends[name] = err
    backend = _backends[name]
    if isinstance(backend, BaseException):
        pytest.skip(f"backend {name} not installed: {backend}")
    return backend


@pytest.fixture(scope="session", params=sorted(BACKENDS))
def backend(request) -> Backend:
    return load_backend(request.param)


@dataclass
class Cast:
    """Three people with at least six photos: three to enroll, three to probe; and some strangers."""

    enroll: dict[str, list[Path]]
    probes: dict[str, list[Path]]
    strangers: list[Path]


@pytest.fixture(scope="session")
def cast(faces_dir: Path) -> Cast:
    people = [d for d in sorted((faces_dir / "people").iterdir()) if len(list(d.iterdir())) >= 2 * ENROLL]
    chosen = people[:PEOPLE]
    enroll = {d.name: sorted(d.iterdir())[:ENROLL] for d in chosen}
    probes = {d.name: sorted(d.iterdir())[ENROLL : 2 * ENROLL] for d in chosen}
    folders = sorted((faces_dir / "strangers").iterdir())[:STRANGERS]
    strangers = [sorted(d.iterdir())[0] for d in folders]
    return Cast(enroll, probes, strangers)


_enrolled: dict[str, Recognizer] = {}


@pytest.fixture(scope="session")
def enrolled(backend: Backend, cast: Cast, tmp_path_factory) -> Recognizer:
    """A model folder with the cast enrolled (as `smartlock train` would: largest face)."""
    if backend.name not in _enrolled:
        recognizer = Recognizer.create(tmp_path_factory.mktemp(f"model-{backend.name}"), backend)
        batches = {name: [(p.name, p.read_bytes()) for p in paths] for name, paths in cast.enroll.items()}
        recognizer.enroll_many(batches, multiple_faces="largest")
        _enrolled[backend.name] = recognizer
    return _enrolled[backend.name]
