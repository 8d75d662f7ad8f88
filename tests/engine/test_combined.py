"""`smartlock vision` as a real process: camera, recognition API and engine in one, a real door on the mock
relay. The enrolled person unlocks; a stranger does not; both APIs still answer with their secrets only, and
the camera encodes JPEG only for someone watching."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from smartlock.recognition.schemas import API_KEY_HEADER
from smartlock.service.secrets import write_secret
from tests.engine import system
from tests.engine.system import Door, Gallery, background, on_canvas, write_video
from tests.support import free_port, wait_for, wait_until_up

pytestmark = [pytest.mark.faces, pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vision")


@pytest.fixture(scope="module")
def gallery(faces_dir: Path, workdir: Path) -> Gallery:
    return system.build_gallery(faces_dir, workdir / "model", people=2, photos=3)


@pytest.fixture(scope="module")
def door(workdir: Path) -> Iterator[Door]:
    logs = workdir / "door-logs"
    logs.mkdir()
    with system.door(workdir, logs) as door:
        yield door


def vision_args(video: Path, gallery: Gallery, door: Door, workdir: Path,
                name: str) -> tuple[list[str], dict]:
    camera_port, recognition_port = free_port(), free_port()
    secrets = {"camera_secret": workdir / f"{name}-camera.secret", "api_key": workdir / f"{name}-api.key"}
    write_secret(secrets["camera_secret"], f"camera-secret-{name}-0123456789")
    write_secret(secrets["api_key"], f"api-key-{name}-0123456789")
    args = ["vision", "--source", str(video), "--camera-port", str(camera_port),
            "--recognition-port", str(recognition_port), "--model", str(gallery.model_dir),
            "--camera-token-file", str(secrets["camera_secret"]), "--face-recognition-api-key-file",
            str(secrets["api_key"]), "--door-api-url", door.unlock_url, "--door-secret-file",
            str(door.secret_file), "--log-path", str(workdir / f"{name}-log"), "--log-level", "DEBUG",
            "--liveness", "off"]  # a photo on a wall: what liveness refuses (its own tests turn it on)
    return args, {"camera": camera_port, "recognition": recognition_port, **secrets}


def test_enrolled_person_unlocks_and_both_apis_serve(gallery: Gallery, door: Door, workdir: Path) -> None:
    name = next(iter(gallery.probes))
    face = on_canvas(gallery.probes[name])
    video = write_video(workdir / "enrolled.mp4", [(background(), 2.0), (face, 2.5), (background(), 6.0)])
    args, where = vision_args(video, gallery, door, workdir, "enrolled")
    start_id = door.last_id()
    with system.smartlock_process(args, workdir / "enrolled.out") as vision:
        wait_until_up(system.url(where["recognition"], "/health"), timeout=90, process=vision.popen)
        wait_for(lambda: door.unlocks(start_id), timeout=60, interval=0.2, what="an unlock")
        recognition = system.url(where["recognition"], "/people")
        assert httpx.get(recognition).status_code == 401
        key = where["api_key"].read_text().strip()
        people = httpx.get(recognition, headers={API_KEY_HEADER: key}).json()["people"]
        assert sorted(person["name"] for person in people) == sorted(gallery.people)
        snapshot = system.url(where["camera"], "/snapshot.jpg")
        assert httpx.get(snapshot).status_code == 401
        from smartlock.camera.signing import viewing_token

        token = viewing_token(where["camera_secret"].read_text().strip())
        picture = httpx.get(snapshot, headers={"Authorization": f"Bearer {token}"})
        assert picture.status_code == 200 and picture.content[:2] == b"\xff\xd8"
    unlocks = door.unlocks(start_id)
    assert len(unlocks) == 1 and unlocks[0]["person"] == name and unlocks[0]["source"] == "engine"
    assert "Door unlocked" in vision.text()


def test_a_stranger_never_unlocks(gallery: Gallery, door: Door, workdir: Path) -> None:
    face = on_canvas(gallery.strangers[0])
    video = write_video(workdir / "stranger.mp4", [(background(), 1.0), (face, 4.0)])
    args, _ = vision_args(video, gallery, door, workdir, "stranger")
    start_id = door.last_id()
    with system.smartlock_process(args, workdir / "stranger.out") as vision:
        wait_for(lambda: vision.counts()["analysed"] >= 8 or vision.popen.poll() is not None, timeout=90,
                 interval=0.2, what="eight analysed frames of the stranger")
        assert vision.popen.poll() is None, vision.text()[-2000:]
    assert door.unlocks(start_id) == []
    assert "Door unlocked" not in vision.text()
