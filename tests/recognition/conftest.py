"""Backends and photos for the recognition tests, built once per session for each backend.

As gpiozero runs one suite over every pin factory, the shared suite (test_recognizer_contract.py) runs
over ``ALL_BACKENDS``: the fake backend on synthetic images, and each real backend that can load on a
handful of photos of ../shared/faces (skipped when its packages or the photos are missing).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from smartlock.recognition.backends.base import BACKENDS, Backend, get_backend
from smartlock.recognition.images import encode_jpeg_rgb, load_image
from smartlock.recognition.recognizer import Recognizer
from tests.recognition.fakes import FakeBackend, face_image, png

ENROLL = 3
PEOPLE = 3
STRANGERS = 15
REAL_BACKENDS = sorted(BACKENDS)
ALL_BACKENDS = ["fake", *REAL_BACKENDS]

_backends: dict[str, Backend | BaseException] = {}


def load_backend(name: str) -> Backend:
    """One instance per backend per session; skips when its packages are not installed."""
    if name not in _backends:
        try:
            _backends[name] = FakeBackend() if name == "fake" else get_backend(name)
        except ImportError as err:
            _backends[name] = err
    backend = _backends[name]
    if isinstance(backend, BaseException):
        pytest.skip(f"backend {name} not installed: {backend}")
    return backend


@pytest.fixture(scope="session", params=REAL_BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each real backend (for what only real models show: weights, odd photos, small faces)."""
    return load_backend(request.param)


@pytest.fixture(scope="session", params=ALL_BACKENDS)
def any_backend(request: pytest.FixtureRequest) -> Backend:
    """The fake backend and each real one: the shared suite's parameter."""
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


@dataclass
class Photos:
    """What the shared suite shows a backend, as encoded images: photos to enroll and later photos of the
    same people, strangers, an image without a face, and two enrolled people side by side (``pair``:
    left person, right person, and the x where the left photo ends)."""

    enroll: dict[str, list[tuple[str, bytes]]]
    probes: dict[str, list[bytes]]
    strangers: list[bytes]
    no_face: bytes
    pair: tuple[bytes, str, str, float]


def synthetic_photos() -> Photos:
    """The fake backend's cast: the pixels say who is in the picture (tests/recognition/fakes.py)."""
    names = {1: "alice", 2: "bob", 3: "carol"}
    enroll = {name: [(f"{i}-{v}.png", png(face_image((i, v)))) for v in range(1, ENROLL + 1)]
              for i, name in names.items()}
    probes = {name: [png(face_image((i, v))) for v in (7, 8, 9)] for i, name in names.items()}
    strangers = [png(face_image((60 + k, 0))) for k in range(STRANGERS)]
    nobody = np.full((64, 64, 3), 200, np.uint8)
    nobody[0, :, 0] = 0
    # the fake puts face 0 at x 0-40 and face 1 at x 50-85
    pair = png(face_image((1, 8), (2, 8)))
    return Photos(enroll, probes, strangers, png(nobody), (pair, "alice", "bob", 45))


def real_photos(cast: Cast) -> Photos:
    enroll = {name: [(p.name, p.read_bytes()) for p in paths] for name, paths in cast.enroll.items()}
    probes = {name: [p.read_bytes() for p in paths] for name, paths in cast.probes.items()}
    rng = np.random.default_rng(3)
    landscape = np.zeros((360, 640, 3), np.uint8)
    landscape[:180] = (120, 170, 230)
    landscape[180:] = (60, 120, 40)
    landscape += rng.integers(0, 20, landscape.shape, dtype=np.uint8)
    left_name, right_name = sorted(cast.probes)[:2]
    left, right = (load_image(cast.probes[name][0]) for name in (left_name, right_name))
    canvas = np.full((max(left.shape[0], right.shape[0]), left.shape[1] + right.shape[1], 3), 128, np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: right.shape[0], left.shape[1] :] = right
    return Photos(enroll, probes, [p.read_bytes() for p in cast.strangers], encode_jpeg_rgb(landscape),
                  (encode_jpeg_rgb(canvas), left_name, right_name, float(left.shape[1])))


_photos: dict[str, Photos] = {}
_enrolled: dict[str, Recognizer] = {}


@pytest.fixture(scope="session")
def photos(any_backend: Backend, request: pytest.FixtureRequest) -> Photos:
    kind = "fake" if any_backend.name == "fake" else "real"
    if kind not in _photos:
        _photos[kind] = synthetic_photos() if kind == "fake" else real_photos(request.getfixturevalue("cast"))
    return _photos[kind]


@pytest.fixture(scope="session")
def enrolled_any(
    any_backend: Backend, photos: Photos, tmp_path_factory: pytest.TempPathFactory
) -> Recognizer:
    """A model folder with the cast enrolled by ``any_backend`` (as `smartlock train` would: largest
    face). Shared by the session: tests that change the gallery take ``fresh`` instead."""
    key = any_backend.name  # the same folder as ``enrolled`` for a real backend: same photos, same names
    if key not in _enrolled:
        recognizer = Recognizer.create(tmp_path_factory.mktemp(f"model-{any_backend.name}"), any_backend)
        outcomes = recognizer.enroll_many(photos.enroll, multiple_faces="largest")
        assert all(o.enrolled for items in outcomes.values() for o in items), outcomes
        _enrolled[key] = recognizer
    return _enrolled[key]


@pytest.fixture
def fresh(enrolled_any: Recognizer, any_backend: Backend, tmp_path: Path) -> Recognizer:
    """A private copy of ``enrolled_any``'s model folder, loaded (nothing is embedded again)."""
    assert enrolled_any.model_dir is not None
    shutil.copytree(enrolled_any.model_dir, tmp_path / "model")
    return Recognizer.load(tmp_path / "model", any_backend)


@pytest.fixture(scope="session")
def enrolled(backend: Backend, cast: Cast, tmp_path_factory: pytest.TempPathFactory) -> Recognizer:
    """A real backend's model folder with the cast enrolled (for the real-only tests)."""
    if backend.name not in _enrolled:
        recognizer = Recognizer.create(tmp_path_factory.mktemp(f"model-{backend.name}"), backend)
        batches = {name: [(p.name, p.read_bytes()) for p in paths] for name, paths in cast.enroll.items()}
        recognizer.enroll_many(batches, multiple_faces="largest")
        _enrolled[backend.name] = recognizer
    return _enrolled[backend.name]
