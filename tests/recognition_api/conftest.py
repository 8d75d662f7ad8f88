"""Fixtures of the recognition API tests: a fake recognizer behind a real uvicorn; a real trained model."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from smartlock.recognition.api import create_app
from smartlock.recognition.settings import GENERATED_KEY_FILE
from smartlock.service import read_secret
from tests.recognition_api.fakes import FakeRecognizer
from tests.support import free_port, service_process, uvicorn_server


@dataclass
class Served:
    url: str
    recognizer: FakeRecognizer
    http: httpx.Client


@pytest.fixture
def served() -> Iterator[Served]:
    """A fresh fake gallery behind a real server on 127.0.0.1 (no API key)."""
    recognizer = FakeRecognizer()
    with uvicorn_server(create_app(recognizer)) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield Served(url, recognizer, http)


@dataclass(frozen=True)
class TrainedModel:
    """A real gallery of ENROLLED people (3 photos each) trained from ../shared/faces, plus the
    photos the tests probe with: people's later photos, a NEWCOMER to enroll through the API, strangers."""

    model_dir: Path
    backend: str
    enrolled: dict[str, list[Path]]  # name -> photos NOT used for enrollment (probes)
    newcomers: dict[str, list[Path]]  # name -> all photos (enroll 3 through the API, probe with the 4th)
    strangers: list[Path]


def train(faces_dir: Path, work: Path, backend_name: str) -> TrainedModel:
    """`smartlock train` (a real process) on the first 3 photos of 4 people who have at least 6."""
    people = sorted(p for p in (faces_dir / "people").iterdir() if len(list(p.glob("*.jpg"))) >= 6)
    chosen, newcomers = people[:4], people[4:6]
    dataset, model_dir = work / "dataset", work / "model"
    enrolled = {}
    for person in chosen:
        photos = sorted(person.glob("*.jpg"))
        (dataset / person.name).mkdir(parents=True)
        for photo in photos[:3]:
            (dataset / person.name / photo.name).symlink_to(photo)
        enrolled[person.name] = photos[3:]
    command = [sys.executable, "-m", "smartlock", "train", "-d", str(dataset), "-o", str(model_dir),
               "--backend", backend_name, "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    images = json.loads((model_dir / "gallery.json").read_text())["images"]
    assert sorted({image["person"] for image in images}) == sorted(enrolled) and len(images) == 12
    strangers = [next(p.glob("*.jpg")) for p in sorted((faces_dir / "strangers").iterdir())[:8]]
    return TrainedModel(
        model_dir=model_dir,
        backend=backend_name,
        enrolled=enrolled,
        newcomers={p.name: sorted(p.glob("*.jpg")) for p in newcomers},
        strangers=strangers,
    )


@pytest.fixture(scope="session")
def trained_model(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """The default (arcface) backend's gallery."""
    return train(faces_dir, tmp_path_factory.mktemp("recognition-api"), "arcface")


@pytest.fixture(scope="session", params=["arcface", "dlib"])
def each_backend_model(
    request: pytest.FixtureRequest, faces_dir: Path, trained_model: TrainedModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> TrainedModel:
    """The same gallery made by every installed backend (skipped where a backend is not installed)."""
    if request.param == "arcface":
        return trained_model
    from smartlock.errors import DependencyMissing
    from smartlock.recognition.backends.base import get_backend

    try:
        get_backend(request.param)
    except (DependencyMissing, ModuleNotFoundError) as err:
        pytest.skip(f"backend {request.param} not installed: {err}")
    return train(faces_dir, tmp_path_factory.mktemp(f"recognition-api-{request.param}"), request.param)


def copy_model(model: TrainedModel, destination: Path) -> Path:
    """A private copy of the trained model directory (tests that change the gallery use their own)."""
    target = destination / "model"
    shutil.copytree(model.model_dir, target)
    return target


@dataclass(frozen=True)
class Service:
    """A running `smartlock recognition`: its base URL, the key its clients send (None: --no-auth), the
    file its output goes to and its process id."""

    url: str
    key: str | None
    log: Path
    pid: int

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key} if self.key else {}

    def client(self, timeout: float = 120) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)


def service_key(model_dir: Path, extra: tuple[str, ...]) -> str | None:
    """The key a service started with ``extra`` flags requires: its --api-key-file, or the one it generated
    in the model folder (None with --no-auth)."""
    if "--no-auth" in extra:
        return None
    given = extra[extra.index("--api-key-file") + 1] if "--api-key-file" in extra else None
    return read_secret(Path(given) if given else model_dir / GENERATED_KEY_FILE)


@contextlib.contextmanager
def recognition_service(model_dir: Path, log_dir: Path, *extra: str) -> Iterator[Service]:
    """Run `smartlock recognition` as a real process on a free loopback port (started as the README shows:
    the key is generated in the model folder unless ``extra`` says otherwise)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = log_dir / f"recognition-{port}.log"
    args = ["recognition", "--model", str(model_dir), "--host", "127.0.0.1", "--port", str(port), *extra]
    with service_process(args, ready_url=f"{url}/health", log_path=log) as process:
        yield Service(url, service_key(model_dir, extra), log, process.pid)
