"""The detection gate with the real SCRFD model on real photos: faces found with landmarks at door-camera
sizes, small or blurred faces reported as unusable, unchanged empty frames skipped, Haar on request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smartlock.engine.gate import Gate, build_gate
from smartlock.engine.vision import default_haar_path
from smartlock.errors import ConfigError

cv2 = pytest.importorskip("cv2")


def background() -> np.ndarray:
    noise = np.random.default_rng(0).integers(60, 140, (360, 640, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 6)


def frame_with(photo: Path, face_px: float, x: int = 200, y: int = 40) -> np.ndarray:
    """``photo`` (an LFW 250 px photo, face about 105 px wide) scaled so the face is ``face_px`` wide."""
    image = cv2.imread(str(photo))
    scale = face_px / 105
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = background()
    height, width = min(image.shape[0], 360 - y), min(image.shape[1], 640 - x)
    frame[y:y + height, x:x + width] = image[:height, :width]
    return frame


@pytest.fixture(scope="module")
def photos(faces_dir: Path) -> list[Path]:
    return [next(folder.glob("*.jpg")) for folder in sorted((faces_dir / "strangers").iterdir())[:8]]


@pytest.fixture(scope="module")
def gate() -> Gate:
    return build_gate(None, 320)


@pytest.mark.parametrize("face_px", [90, 150])
def test_scrfd_finds_faces_with_landmarks_inside_the_box(gate: Gate, photos: list[Path],
                                                        face_px: int) -> None:
    for photo in photos:
        gate._last_had_face = True  # every frame is new here
        result = gate(frame_with(photo, face_px, y=20), now=0.0)
        assert result.faces, photo
        face = result.faces[0]  # largest first (an LFW photo may show someone behind)
        assert 0.6 * face_px < face.width < 1.6 * face_px
        assert face.landmarks is not None and face.landmarks.shape == (5, 2)
        left, top, right, bottom = face.box
        assert all(left <= x <= right and top <= y <= bottom for x, y in face.landmarks)


def test_an_empty_frame_has_no_face(gate: Gate) -> None:
    result = gate(background(), now=100.0)
    assert result.checked and not result.any_face


def test_a_small_face_is_found_but_reported_too_small(photos: list[Path]) -> None:
    gate = build_gate(None, 640)
    result = gate(frame_with(photos[0], 30), now=0.0)
    assert not result.faces and [item.reason for item in result.unusable] == ["too small"]


def test_a_badly_blurred_face_is_reported_blurred(gate: Gate, photos: list[Path]) -> None:
    reported = usable = 0
    for photo in photos:
        gate._last_had_face = True
        sharp = gate(frame_with(photo, 150, y=20), now=0.0)
        assert sharp.faces and not sharp.unusable  # the same face in focus is usable
        gate._last_had_face = True
        defocused = gate(cv2.GaussianBlur(frame_with(photo, 150, y=20), (0, 0), 12), now=0.0)
        usable += bool(defocused.faces)
        reported += any(item.reason == "blurred" for item in defocused.unusable)
    # nearly all are kept from recognition; most as "blurred", the rest the detector does not even find
    assert usable <= 1 and reported >= len(photos) // 2


def test_unchanged_empty_frames_skip_the_detector_until_the_recheck(photos: list[Path]) -> None:
    calls = []

    def finder(image: np.ndarray) -> list:
        calls.append(1)
        return []

    gate = Gate(finder, recheck=0.5)
    empty = background()
    assert gate(empty, now=0.0).checked
    assert not gate(empty.copy(), now=0.1).checked and not gate(empty, now=0.4).checked
    assert gate(empty, now=0.6).checked  # the recheck
    assert gate(frame_with(photos[0], 150), now=0.7).checked  # something changed: looked at at once
    assert len(calls) == 3 and gate.skipped == 2


def test_a_small_face_arriving_is_looked_at_at_once_while_sensor_noise_is_not(photos: list[Path]) -> None:
    """A face of the smallest usable size changes a thirtieth of the frame: too little for the frame's mean
    difference, enough for the window where it arrives (the first frame a walking person can be recognised
    must not wait for the recheck)."""
    calls = []

    def finder(image: np.ndarray) -> list:
        calls.append(1)
        return []

    rng = np.random.default_rng(1)

    def noisy(frame: np.ndarray, sigma: float = 4.0) -> np.ndarray:
        return np.clip(frame + rng.normal(0, sigma, frame.shape), 0, 255).astype(np.uint8)

    gate = Gate(finder, recheck=10.0)
    empty = background()
    assert gate(noisy(empty), now=0.0).checked
    assert not any(gate(noisy(empty), now=0.1 * i).checked for i in range(1, 6))
    small = frame_with(photos[0], 45)
    assert float(np.abs(small.astype(float) - empty).mean()) < 2.5  # the whole frame hardly changed
    assert gate(noisy(small), now=0.7).checked
    assert len(calls) == 2 and gate.skipped == 5


def test_haar_only_when_asked_and_bad_sizes_refused() -> None:
    haar = build_gate(str(default_haar_path()))
    assert haar.name == "haar"
    assert build_gate(None, 320).name == "scrfd"
    with pytest.raises(ConfigError):
        build_gate(None, 100)
    with pytest.raises(ConfigError):
        build_gate("/nonexistent/cascade.xml")
