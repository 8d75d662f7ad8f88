"""The data collector with fake collaborators: which frames it keeps, and how it names and describes them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from smartlock.engine.collector import Collector, crop_box
from smartlock.engine.frames import Frame
from smartlock.errors import ConfigError, ServiceError
from tests.engine.fakes import ClockStop, EndlessFrames, ScriptedRecognizer, always, api_face
from tests.support import ManualClock

SEED_NAME = re.compile(
    r"^(?P<label>.+)-(?P<confidence>\d\.\d\d)-\d{8}T\d{6}Z(-\d+)?\.jpeg$"  # ISO 8601 basic, UTC
)


def frame(width: int = 1280, height: int = 720) -> Frame:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = 200  # left half bright: shows whether the saved frame was mirrored
    return Frame(image=image, seq=1, received=0.0, captured=1700000000.5)


def collector(tmp_path: Path, *answers: object, low: float = 0.6, high: float = 0.8, **options) -> Collector:
    clock = ManualClock()
    detector = options.pop("detector", always(True))
    return Collector(EndlessFrames(clock), ScriptedRecognizer(*answers), tmp_path, min_confidence=low,
                     max_confidence=high, detector=detector, clock=clock, **options)


def test_saves_a_frame_in_the_band_with_the_seed_name_crop_and_sidecar(tmp_path: Path) -> None:
    answer = [api_face("bob", 0.95), api_face("alice", 0.7234), api_face("carol", 0.61)]
    path = collector(tmp_path, answer).process(frame())
    assert path is not None
    match = SEED_NAME.match(path.name)
    assert match and (match["label"], match["confidence"]) == ("alice", "0.72")  # best face in the band
    saved = cv2.imread(str(path))
    assert saved.shape == (720, 1280, 3)  # full resolution, like the seed
    assert saved[:, :600].mean() > 180 and saved[:, 700:].mean() < 20  # as the camera saw it, not mirrored
    sidecar = json.loads(path.with_name(path.name[: -len(".jpeg")] + ".json").read_text())
    assert sidecar["frame"] == path.name and sidecar["captured"] == 1700000000.5
    assert [f["in_band"] for f in sidecar["faces"]] == [False, True, True]
    # boxes are in the saved frame's pixels: the API saw it mirrored at 640x360, half the size
    assert sidecar["faces"][1]["bounding_box"] == {"left": 1180.0, "top": 40.0, "right": 1260.0,
                                                   "bottom": 140.0}
    crops = [f["crop"] for f in sidecar["faces"]]
    assert crops[0] is None and crops[1].endswith(".face-1.jpeg") and crops[2].endswith(".face-2.jpeg")
    crop = cv2.imread(str(tmp_path / crops[1]))
    assert crop.shape == (140, 112, 3)  # 80x100 box plus 20 % each side


def test_band_limits_are_inclusive(tmp_path: Path) -> None:
    assert collector(tmp_path, [api_face("a", 0.6)]).process(frame()) is not None
    assert collector(tmp_path, [api_face("b", 0.8)]).process(frame()) is not None


@pytest.mark.parametrize("answer", [[api_face("alice", 0.59)], [api_face("alice", 0.81)], []])
def test_nothing_saved_outside_the_band(tmp_path: Path, answer: list) -> None:
    assert collector(tmp_path, answer).process(frame()) is None
    assert list(tmp_path.iterdir()) == []


def test_recognition_errors_and_faceless_frames_save_nothing(tmp_path: Path) -> None:
    failing = collector(tmp_path, ServiceError("down"))
    assert failing.process(frame()) is None and failing.errors == 1
    faceless = collector(tmp_path, [api_face("alice", 0.7)], detector=always(False))
    assert faceless.process(frame()) is None and faceless.recognize.calls == 0
    assert list(tmp_path.iterdir()) == []


def test_same_second_frames_get_distinct_names(tmp_path: Path) -> None:
    c = collector(tmp_path, [api_face("alice", 0.7)])
    names = {c.process(frame()).name for _ in range(3)}
    assert len(names) == 3


def test_samples_at_fps(tmp_path: Path) -> None:
    c = collector(tmp_path, [api_face("alice", 0.7)], fps=4, mirror=False)
    stop = ClockStop(c.clock)
    end = c.clock() + 5
    while c.clock() < end:
        c.step(stop)
    assert 19 <= len(c.saved) <= 21


def test_bad_band_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        collector(tmp_path, [], low=0.9, high=0.8)


def test_crop_box_clips_to_the_frame() -> None:
    assert crop_box((0, 0, 10, 10), 8, 8) == (0, 0, 8, 8)
    assert crop_box((20, 20, 30, 30), 10, 10) is None
