"""The live view fed by the engine: a real LivePublisher posts analysed frames to a real dashboard, which
shows that very frame with its boxes and runs no recognition of its own; forged posts change nothing."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from smartlock.camera.mjpeg import jpeg_size
from smartlock.engine.analysis import AnalysedFace, Analysis
from smartlock.engine.live import LivePublisher
from smartlock.engine.vision import encode_jpeg_bgr
from smartlock.web.routes.live import LIVE_HOOK_PATH, MAX_LIVE_FRAME_BYTES
from tests.support import wait_for
from tests.web.conftest import WEBHOOK_TOKEN, System

BOX = (100.0, 60.0, 180.0, 160.0)


def analysis(seq: int, faces: list[AnalysedFace]) -> Analysis:
    image = np.zeros((360, 640, 3), np.uint8)
    image[60:160, 100:180] = 200
    return Analysis(seq=seq, received=0.0, time=1_800_000_000.0 + seq, image=image, faces=faces,
                    recognised=[], analysed=True, threshold=0.8)


def test_the_page_gets_the_engines_frame_with_its_boxes_and_no_recognition_runs(system: System) -> None:
    publisher = LivePublisher(system.url + LIVE_HOOK_PATH, WEBHOOK_TOKEN)
    try:
        publisher(analysis(7, [AnalysedFace(BOX, 3, "alice", 0.93, True, "live")]))
        wait_for(lambda: publisher.sent == 1, 10, what="the analysis posted")
    finally:
        publisher.close()
    client = system.client()
    live = client.get("/api/live/faces").json()
    assert live["source"] == "engine" and live["seq"] == 7 and (live["width"], live["height"]) == (640, 360)
    (face,) = live["faces"]
    assert face["track"] == 3 and face["label"] == "alice" and face["liveness"] == "live"
    assert tuple(face["box"].values()) == BOX
    frame = client.get(live["frame"])
    assert frame.status_code == 200 and jpeg_size(frame.content) == (640, 360)
    assert client.get("/api/live/frame.jpg?seq=6").status_code == 404  # not that frame: gone
    assert system.recognition.recognitions == 0


def test_a_heartbeat_without_faces_means_nobody_is_in_view(system: System) -> None:
    publisher = LivePublisher(system.url + LIVE_HOOK_PATH, WEBHOOK_TOKEN)
    try:
        publisher(analysis(1, []))
        wait_for(lambda: publisher.sent == 1, 10, what="the heartbeat posted")
    finally:
        publisher.close()
    system.recognition.seen = [{"top_prediction": {"label": "alice", "confidence": 0.99},
                                "bounding_box": {"left": 1, "top": 1, "right": 50, "bottom": 50}}]
    client = system.client()
    live = client.get("/api/live/faces").json()
    assert live["faces"] == [] and live["frame"] is None
    assert system.recognition.recognitions == 0  # the engine is there: the dashboard does not recognise


def post(system: System, token: str, summary: object, jpeg: bytes | None) -> httpx.Response:
    files: dict = {"analysis": (None, json.dumps(summary), "application/json")}
    if jpeg is not None:
        files["frame"] = ("frame.jpg", jpeg, "image/jpeg")
    authorization = token if token == "Basic" else f"Bearer {token}"
    return httpx.post(system.url + LIVE_HOOK_PATH, files=files, headers={"Authorization": authorization})


GOOD = {"seq": 5, "time": 1.0, "width": 640, "height": 360, "analysed": True, "threshold": 0.8,
        "faces": [{"box": {"left": 1, "top": 2, "right": 3, "bottom": 4}, "track": 1, "label": "mallory",
                   "confidence": 0.99}]}


@pytest.mark.parametrize(("token", "summary", "frame", "status"), [
    ("wrong-token", GOOD, "good", 404),
    ("Basic", GOOD, "good", 404),
    (WEBHOOK_TOKEN, {**GOOD, "faces": "x"}, "good", 400),
    (WEBHOOK_TOKEN, {**GOOD, "width": 320}, "good", 400),  # the frame is not the size announced
    (WEBHOOK_TOKEN, GOOD, "not-a-jpeg", 400),
    (WEBHOOK_TOKEN, {**GOOD, "faces": [GOOD["faces"][0]] * 100}, "good", 400),  # too many faces
    (WEBHOOK_TOKEN, {**GOOD, "faces": [{**GOOD["faces"][0], "confidence": 7}]}, "good", 400),
    (WEBHOOK_TOKEN, GOOD, "huge", 413),
])
def test_forged_or_malformed_analyses_change_nothing(system: System, token: str, summary: object,
                                                      frame: str, status: int) -> None:
    good = encode_jpeg_bgr(np.zeros((360, 640, 3), np.uint8))
    jpeg = {"good": good, "not-a-jpeg": b"GIF89a" + b"\0" * 100,
            "huge": good + b"\0" * (MAX_LIVE_FRAME_BYTES + 10)}[frame]
    response = post(system, token, summary, jpeg)
    assert response.status_code == status, response.text
    assert system.dashboard.live.engine_frame() is None and not system.dashboard.live.engine_present
    client = system.client()
    assert client.get("/api/live/faces").json()["source"] == "dashboard"


def test_a_crowd_is_shown_by_its_largest_faces_not_refused(system: System) -> None:
    faces = [AnalysedFace((10.0 * i, 0.0, 10.0 * i + 5 + i, 5.0 + i), i) for i in range(40)]
    publisher = LivePublisher(system.url + LIVE_HOOK_PATH, WEBHOOK_TOKEN)
    try:
        publisher(analysis(9, faces))
        wait_for(lambda: publisher.sent + publisher.failed >= 1, 10, what="the crowd posted")
    finally:
        publisher.close()
    assert publisher.failed == 0
    shown = system.client().get("/api/live/faces").json()["faces"]
    assert len(shown) == 32 and sorted(face["track"] for face in shown) == list(range(8, 40))
