"""The recognition service's detector input size: its setting, and the backend options a Recognizer is
opened with."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from smartlock.recognition.recognizer import Recognizer
from smartlock.recognition.settings import API_DETECTION_SIZE, RecognitionSettings


def test_the_service_detects_at_320_unless_told(monkeypatch):
    monkeypatch.delenv("SMARTLOCK_ARCFACE_DETECTION_SIZE", raising=False)
    assert API_DETECTION_SIZE == 320
    assert RecognitionSettings().backend_options() == {"arcface": {"detection_size": 320}}
    assert RecognitionSettings(detection_size=640).backend_options() == {"arcface": {"detection_size": 640}}


def test_the_environment_variable_is_left_to_the_backend(monkeypatch):
    monkeypatch.setenv("SMARTLOCK_ARCFACE_DETECTION_SIZE", "416")
    assert RecognitionSettings().backend_options() == {"arcface": {"detection_size": None}}
    assert RecognitionSettings(detection_size=640).backend_options() == {"arcface": {"detection_size": 640}}


@pytest.mark.parametrize("size", [0, 32, 100, 330, 8192])
def test_bad_sizes_are_refused(size):
    with pytest.raises(ValidationError, match="detection_size"):
        RecognitionSettings(detection_size=size)


def arcface(**options):
    pytest.importorskip("onnxruntime")
    from smartlock.recognition.backends.base import get_backend

    try:
        return get_backend("arcface", **options)
    except ImportError as err:
        pytest.skip(f"arcface backend not installed: {err}")


def test_a_recognizer_builds_its_backend_with_the_options_for_it(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("SMARTLOCK_ARCFACE_DETECTION_SIZE", raising=False)
    arcface()  # skips without the backend
    options = {"arcface": {"detection_size": 256}, "dlib": {"upsample": 3}}
    created = Recognizer.open_or_create(tmp_path / "model", backend_options=options)
    assert created.backend_name == "arcface" and created.backend.detection_size == 256  # type: ignore[attr-defined]
    loaded = Recognizer.load(tmp_path / "model", backend_options={"arcface": {"detection_size": 416}})
    assert loaded.backend.detection_size == 416  # type: ignore[attr-defined]
    assert loaded.model_hashes() == created.model_hashes()  # the size is no part of the gallery's identity
    assert Recognizer.open_or_create(tmp_path / "model").backend.detection_size == 640  # type: ignore[attr-defined]
