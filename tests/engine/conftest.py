"""The real parts the engine's end-to-end tests share, once per module: a gallery of real photos, the
recognition API, the door on the mock relay."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine import system
from tests.engine.system import Door, Gallery


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="module")
def logs(workdir: Path) -> Path:
    path = workdir / "service-logs"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def gallery(faces_dir: Path, workdir: Path) -> Gallery:
    return system.build_gallery(faces_dir, workdir / "model", people=3, photos=3)


@pytest.fixture(scope="module")
def api_port(gallery: Gallery, logs: Path) -> Iterator[int]:
    with system.recognition(gallery.model_dir, logs) as port:
        yield port


@pytest.fixture(scope="module")
def door(workdir: Path, logs: Path) -> Iterator[Door]:
    with system.door(workdir, logs) as door:
        yield door
