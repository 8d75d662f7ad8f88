"""What other parts ask the recognition part instead of reading its files or redoing its maths: the
calibration report's threshold scores and false-accept estimates, a gallery's backend, face crop files."""

from __future__ import annotations

import pytest

from smartlock.errors import ConfigError
from smartlock.recognition import store
from smartlock.recognition.calibration import CONFIDENCE_LEVELS, estimate_false_accept, threshold_score
from smartlock.recognition.recognizer import Recognizer
from tests.recognition.fakes import FakeBackend, face_image, png


@pytest.fixture
def recognizer(tmp_path) -> Recognizer:
    rec = Recognizer.create(tmp_path / "model", FakeBackend())
    for identity, name in ((1, "alice"), (2, "bob"), (3, "carol")):
        rec.enroll(name, [(f"{identity}-{v}.png", png(face_image((identity, v)))) for v in (1, 2, 3)])
    return rec


def test_threshold_score_is_the_calibrations_own(recognizer) -> None:
    report = recognizer.calibration()
    line = recognizer.gallery.calibration
    for level in CONFIDENCE_LEVELS:
        score = threshold_score(report, level)
        assert score == pytest.approx(line.threshold_score(level, 3))
        assert round(score, 4) == report["threshold_scores"][str(level)]
    assert threshold_score(report, 1.0) is None
    assert threshold_score({**report, "people": 0}, 0.8) is None
    assert threshold_score({"people": 2}, 0.8) is None  # no line


def test_false_accept_measured_estimated_or_unknown(recognizer) -> None:
    report = recognizer.calibration()
    measured = estimate_false_accept(report, 0.8)
    assert measured is not None and measured["method"] == "leave-one-out"
    assert measured["far"] == report["false_accept_at"]["0.8"]
    assert measured["trials"] == report["stranger_trials"]
    estimated = estimate_false_accept(report, 0.7)
    assert estimated is not None and estimated["method"] == "estimate"
    impostors = report["impostor_scores"]
    p = sum(1 for s in impostors if s >= estimated["score"]) / len(impostors)
    assert estimated["far"] == pytest.approx(1 - (1 - p) ** 3)
    assert estimated["trials"] == len(impostors)
    none_yet = estimate_false_accept({**report, "impostor_scores": [], "false_accept_at": {}}, 0.7)
    assert none_yet is not None and (none_yet["far"], none_yet["trials"]) == (None, 0)
    assert estimate_false_accept({**report, "people": 0}, 0.8) is None


def test_gallery_backend(recognizer, tmp_path) -> None:
    model = tmp_path / "model"
    assert store.gallery_backend(model) == "fake"
    assert store.gallery_backend(tmp_path / "nothing") is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / store.METADATA_FILE).write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable"):
        store.gallery_backend(tmp_path / "bad")
