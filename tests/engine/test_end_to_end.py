"""The whole system as real processes on 127.0.0.1: camera (video file) -> engine -> recognition API ->
door API (gpiozero MockFactory relay). Photos from ../shared/faces; a real ArcFace gallery."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from tests.engine import system
from tests.engine.system import Gallery, Process, background, on_canvas, write_video
from tests.support import uvicorn_server, wait_for

pytestmark = [pytest.mark.faces, pytest.mark.slow, pytest.mark.timeout(120)]
T = TypeVar("T")


def wait_on(process: Process, predicate: Callable[[], T], what: str, timeout: float = 40.0) -> T:
    """wait_for, failing with the end of the process's output (what it was doing instead)."""
    try:
        return wait_for(predicate, timeout=timeout, interval=0.2, what=what)
    except AssertionError as err:
        raise AssertionError(f"{err}; output:\n{process.text()[-3000:]}") from None


def enrolled_probe(gallery: Gallery) -> tuple[str, Path]:
    name = next(iter(gallery.probes))
    return name, gallery.probes[name]


def unlock_folders(log_path: Path) -> list[Path]:
    root = log_path / "unlock-frames"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


def test_enrolled_person_unlocks_once_and_is_audited(gallery, api_port, door, workdir, logs) -> None:
    name, photo = enrolled_probe(gallery)
    video = write_video(workdir / "enrolled.mp4", [(background(), 2.0), (on_canvas(photo), 2.5),
                                                   (background(), 9.0)])
    log_path = workdir / "engine-enrolled"
    start_id = door.last_id()
    received, webhook_app = system.webhook_receiver()
    with uvicorn_server(webhook_app) as webhook, system.camera(video, logs) as camera_port, \
            system.smartlock_process(
                system.engine_args(camera_port, door, log_path, api_port=api_port,
                                   extra=["--webhook-url", f"{webhook}/events", "--log-level", "DEBUG"]),
                logs / "engine-enrolled.out") as engine:
        wait_on(engine, lambda: door.unlocks(start_id), "an unlock")
        # the rest of the appearance falls in the block time (6 s), which must prevent a second unlock:
        # wait until the engine looks at frames again, after the block (the person has gone by then)
        at_unlock = wait_on(engine, lambda: next((c for c in engine.frame_counts() if c["unlocks"]), None),
                            "the frame counts of the unlock")
        wait_on(engine, lambda: engine.counts()["seen"] > at_unlock["seen"], "a frame after the block time")
        unlocks = door.unlocks(start_id)
    assert len(unlocks) == 1
    kinds = [event["event"] for event in received]
    assert kinds.count("unlocked") == 1 and "recognised" in kinds
    assert next(e for e in received if e["event"] == "unlocked")["person"] == name
    assert (unlocks[0]["person"], unlocks[0]["source"]) == (name, "engine")
    assert unlocks[0]["confidence"] > 0.8
    assert unlocks[0]["door"] == "unlocked"  # read back from the (mock) pin after the change

    log_text = (log_path / "log.txt").read_text()
    assert "Door unlocked" in log_text and "Analysing frame..." in log_text
    [folder] = unlock_folders(log_path)
    files = sorted(p.name for p in folder.iterdir())
    assert "frame.jpeg" in files and "faces.json" in files
    markers = [f for f in files if f.startswith(f"{name}-")]
    assert len(markers) == 1 and float(markers[0][len(name) + 1 :]) > 0.8
    document = json.loads((folder / "faces.json").read_text())
    assert document["decision"]["label"] == name and document["decision"]["frames"] >= 2
    import cv2

    assert cv2.imread(str(folder / "frame.jpeg")).shape == (360, 640, 3)


def test_stranger_never_unlocks(gallery, api_port, door, workdir, logs) -> None:
    stranger = gallery.strangers[0]
    video = write_video(workdir / "stranger.mp4", [(background(), 1.0), (on_canvas(stranger), 4.0)])
    log_path = workdir / "engine-stranger"
    start_id = door.last_id()
    with system.camera(video, logs) as camera_port, system.smartlock_process(
        system.engine_args(camera_port, door, log_path, api_port=api_port,
                           extra=["--min-frames", "1", "--log-level", "DEBUG"]),
        logs / "engine-stranger.out",
    ) as engine:
        # wait until the engine has really looked at the stranger several times, then a few frames more
        wait_on(engine, lambda: engine.text().count('"label"') >= 6, "the engine to analyse the stranger")
        analysed = engine.counts()["analysed"]
        wait_on(engine, lambda: engine.counts()["analysed"] >= analysed + 4, "four more analysed frames")
    assert door.unlocks(start_id) == []
    assert unlock_folders(log_path) == []
    assert "Door unlocked" not in (log_path / "log.txt").read_text()


def test_recognition_api_down_never_unlocks_and_the_engine_recovers(gallery, door, workdir, logs) -> None:
    _, photo = enrolled_probe(gallery)
    video = write_video(workdir / "always-there.mp4", [(on_canvas(photo), 3.0)])
    log_path = workdir / "engine-api-down"
    error_line = "Error occurred while executing face recognition request!"
    port = system.free_port()
    api = system.start_recognition(gallery.model_dir, logs, port)
    try:
        with system.camera(video, logs) as camera_port, system.smartlock_process(
            system.engine_args(camera_port, door, log_path, api_port=port,
                               extra=["--block-time", "2", "--log-level", "DEBUG"]),
            logs / "engine-api-down.out",
        ) as engine:
            start_id = door.last_id()
            wait_on(engine, lambda: door.unlocks(start_id), "an unlock")

            api.kill()  # the recognition API dies mid-run
            api.wait(10)
            down_id = door.last_id()
            errors_before = engine.text().count(error_line)
            failed = engine.counts()["recognition_errors"]
            # three tries after the 2 s block: with the API up, two of them (K = 2) would have unlocked again
            wait_on(engine, lambda: engine.counts()["recognition_errors"] >= failed + 3,
                    "three failed recognitions")
            assert door.unlocks(down_id) == []
            assert engine.text().count(error_line) > errors_before
            assert engine.popen.poll() is None  # still running

            api = system.start_recognition(gallery.model_dir, logs, port)  # back, same address
            recovered = wait_on(engine, lambda: door.unlocks(down_id), "an unlock after the API came back")
            assert recovered[0]["source"] == "engine"
    finally:
        system.stop_process(api)


def test_collector_saves_frames_in_the_band_and_none_outside(gallery, api_port, workdir, logs) -> None:
    name, photo = enrolled_probe(gallery)
    stranger = gallery.strangers[0]
    video = write_video(workdir / "mixed.mp4", [(on_canvas(photo), 1.5), (on_canvas(stranger), 1.5)])
    high, low = workdir / "collect-high", workdir / "collect-low"
    api_url = system.url(api_port, "/face-recognition")
    with system.camera(video, logs) as camera_port:
        camera_url = system.url(camera_port, "/stream.mjpg")
        common = ["--camera-url", camera_url, "--face-recognition-api-url", api_url, "--fps", "4",
                  *system.secret_args(camera_port, api_port)]
        with system.smartlock_process(["collect", "-min", "0.9", "-max", "1.0", *common, "--log-path",
                                       str(high)], logs / "collect-high.out") as collect_high, \
             system.smartlock_process(["collect", "-min", "0.4", "-max", "0.6", *common, "--log-path",
                                       str(low)], logs / "collect-low.out") as collect_low:
            wait_on(collect_high, lambda: len(list(high.glob("*.json"))) >= 3, "three saved frames")
            # both collectors saw the stranger too (the API answered for it), so "none" means something
            wait_on(collect_low, lambda: collect_low.text().count('"label"') >= 4, "four recognised faces",
                    timeout=20)
    sidecars = [json.loads(p.read_text()) for p in sorted(high.glob("*.json"))]
    for sidecar in sidecars:
        chosen = [f for f in sidecar["faces"] if f["in_band"]]
        assert chosen and all(0.9 <= f["top_prediction"]["confidence"] <= 1.0 for f in chosen)
        assert sidecar["frame"].startswith(f"{name}-")
        assert (high / sidecar["frame"]).is_file()
        assert all((high / f["crop"]).is_file() for f in chosen)
    assert not [p for p in low.iterdir() if p.suffix in (".jpeg", ".json")]
    assert "Frame saved" not in (low / "log.txt").read_text()
