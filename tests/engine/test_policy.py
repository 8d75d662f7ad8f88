"""The unlock rule: K frames above the threshold within a window, per person; the API answer's validation
(the shared face contract, as the engine uses it)."""

from __future__ import annotations

import math

import pytest

from smartlock.engine.policy import UnlockPolicy
from smartlock.errors import ConfigError, ServiceError
from smartlock.recognition.schemas import Face, parse_faces
from tests.engine.fakes import api_face


def face(label: str, confidence: float) -> Face:
    return Face.model_validate(api_face(label, confidence, (10.0, 10.0, 60.0, 70.0)))


def test_k1_is_the_seed_rule_one_frame_strictly_above_threshold() -> None:
    policy = UnlockPolicy(threshold=0.8, min_frames=1, window=0)
    assert policy.observe(0.0, [face("alice", 0.8)]) is None  # the seed compares with ">"
    decision = policy.observe(0.5, [face("alice", 0.81)])
    assert decision is not None
    assert (decision.label, decision.confidence, decision.frames) == ("alice", 0.81, 1)


def test_k2_needs_two_frames_within_the_window() -> None:
    policy = UnlockPolicy(threshold=0.8, min_frames=2, window=1.5)
    assert policy.observe(0.0, [face("alice", 0.9)]) is None
    decision = policy.observe(1.2, [face("alice", 0.95)])
    assert decision is not None
    assert decision.confidences == (0.9, 0.95)
    assert (decision.first_seen, decision.decided_at) == (0.0, 1.2)


def test_frames_older_than_the_window_do_not_count() -> None:
    policy = UnlockPolicy(threshold=0.8, min_frames=2, window=1.0)
    assert policy.observe(0.0, [face("alice", 0.9)]) is None
    assert policy.observe(1.01, [face("alice", 0.9)]) is None
    assert policy.evidence("alice") == 1
    assert policy.observe(2.0, [face("alice", 0.9)]) is not None  # 1.01 and 2.0 are 0.99 s apart


def test_frames_below_threshold_in_between_do_not_erase_evidence() -> None:
    policy = UnlockPolicy(threshold=0.8, min_frames=3, window=2.0)
    assert policy.observe(0.0, [face("alice", 0.9)]) is None
    assert policy.observe(0.2, [face("alice", 0.5)]) is None
    assert policy.observe(0.4, []) is None
    assert policy.observe(0.6, [face("alice", 0.85)]) is None
    decision = policy.observe(0.8, [face("alice", 0.99)])
    assert decision is not None and decision.confidences == (0.9, 0.85, 0.99)


def test_evidence_is_per_person() -> None:
    policy = UnlockPolicy(threshold=0.8, min_frames=2, window=5)
    assert policy.observe(0.0, [face("alice", 0.9)]) is None
    assert policy.observe(0.1, [face("bob", 0.9)]) is None  # one frame each: nobody has two
    decision = policy.observe(0.2, [face("bob", 0.92), face("carol", 0.3)])
    assert decision is not None and decision.label == "bob"


def test_two_faces_of_one_person_in_one_frame_count_once() -> None:
    policy = UnlockPolicy(threshold=0.8, min_frames=2, window=5)
    assert policy.observe(0.0, [face("alice", 0.9), face("alice", 0.95)]) is None
    assert policy.evidence("alice") == 1


def test_best_ready_person_wins_when_two_are_ready_in_the_same_frame() -> None:
    policy = UnlockPolicy(threshold=0.5, min_frames=2, window=5)
    policy.observe(0.0, [face("alice", 0.9), face("bob", 0.9)])
    decision = policy.observe(0.1, [face("alice", 0.7), face("bob", 0.95)])
    assert decision is not None and decision.label == "bob"


def test_no_decision_on_a_frame_that_adds_nothing() -> None:
    policy = UnlockPolicy(threshold=0.8, min_frames=2, window=5)
    policy.observe(0.0, [face("alice", 0.9)])
    assert policy.observe(0.1, [face("alice", 0.9)]) is not None
    # evidence still there (e.g. the door failed); a frame without alice must not re-trigger
    assert policy.observe(0.2, [face("bob", 0.3)]) is None
    assert policy.observe(0.3, [face("alice", 0.9)]) is not None


def test_reset_forgets_everything() -> None:
    policy = UnlockPolicy(threshold=0.8, min_frames=2, window=5)
    policy.observe(0.0, [face("alice", 0.9)])
    policy.reset()
    assert policy.evidence("alice") == 0
    assert policy.observe(0.1, [face("alice", 0.9)]) is None


@pytest.mark.parametrize(("threshold", "k", "window"), [(-0.1, 1, 1), (1.1, 1, 1), (0.8, 0, 1), (0.8, 2, 0)])
def test_bad_settings_are_refused(threshold: float, k: int, window: float) -> None:
    with pytest.raises(ConfigError):
        UnlockPolicy(threshold, k, window)


def test_parse_faces_reads_the_api_contract() -> None:
    payload = [{"top_prediction": {"label": "alice", "confidence": 0.97},
                "bounding_box": {"left": 1, "top": 2, "right": 30, "bottom": 40}, "all_predictions": None},
               {"top_prediction": {"label": "bob", "confidence": 1},
                "bounding_box": {"left": 5, "top": 6, "right": 7, "bottom": 8}}]
    faces = parse_faces(payload)
    assert [(f.label, f.confidence, f.box) for f in faces] == [("alice", 0.97, (1.0, 2.0, 30.0, 40.0)),
                                                              ("bob", 1.0, (5.0, 6.0, 7.0, 8.0))]
    assert faces[0].model_dump()["bounding_box"] == {"left": 1.0, "top": 2.0, "right": 30.0, "bottom": 40.0}
    assert parse_faces(faces) == faces  # the client's Face models pass as they are


BOX = {"left": 1, "top": 2, "right": 30, "bottom": 40}


@pytest.mark.parametrize("payload", [
    {"faces": []},
    None,
    [{"label": "alice", "bounding_box": BOX}],
    [{"top_prediction": {"label": "alice"}, "bounding_box": BOX}],
    [{"top_prediction": {"label": 3, "confidence": 0.9}, "bounding_box": BOX}],
    [{"top_prediction": {"label": "alice", "confidence": "high"}, "bounding_box": BOX}],
    [{"top_prediction": {"label": "alice", "confidence": True}, "bounding_box": BOX}],
    [{"top_prediction": {"label": "alice", "confidence": 1.5}, "bounding_box": BOX}],
    [{"top_prediction": {"label": "alice", "confidence": math.nan}, "bounding_box": BOX}],
    [{"top_prediction": {"label": "alice", "confidence": 0.9}, "bounding_box": {"left": 1}}],
    [{"top_prediction": {"label": "alice", "confidence": 0.9}, "bounding_box": None}],  # the contract has one
    [{"top_prediction": {"label": "alice", "confidence": 0.9}}],
    ["alice"],
])
def test_parse_faces_refuses_malformed_answers(payload: object) -> None:
    with pytest.raises(ServiceError):
        parse_faces(payload)
