"""Depth from motion on landmarks of known geometry: a head's nose leaves the plane of eyes and mouth."""

from __future__ import annotations

import numpy as np

from smartlock.engine.liveness import depth
from tests.engine.liveness.synth import HEAD, PLANE, landmark_track, swing

N = 48


def poses(yaw: float, pitch: float, distance: float = 0.7) -> list[tuple[float, float, float, float]]:
    return list(zip([distance] * N, swing(N, yaw), swing(N, pitch, period=2.0) - 5, [0.0] * N, strict=True))


def test_a_head_turning_is_live() -> None:
    result = depth.judge(landmark_track(HEAD, poses(20, 10)))
    assert result.decision == "live", result.reason
    assert result.score > 0


def test_a_head_walking_toward_a_camera_above_is_live() -> None:
    # only the approach changes the view: the camera 20 cm above the eyes sees the face ever more from above
    walk = [(2.0 - 1.0 * i / 24, 0.0, float(np.degrees(np.arctan2(0.2, 2.0 - 1.0 * i / 24))), 0.0)
            for i in range(N)]
    assert depth.judge(landmark_track(HEAD, walk)).decision == "live"


def test_a_card_moved_in_3d_is_an_attack() -> None:
    result = depth.judge(landmark_track(PLANE, poses(40, 35, distance=0.5)))
    assert result.decision == "attack", result.reason
    assert result.score < 0


def test_a_card_turned_a_little_is_never_live() -> None:
    assert depth.judge(landmark_track(PLANE, poses(15, 10))).decision != "live"


def test_canonical_nose_of_a_plane_is_constant_under_any_homography() -> None:
    rng = np.random.default_rng(3)
    points = np.array([[-0.5, 0], [0.5, 0], [0.05, 0.6], [-0.4, 1.1], [0.4, 1.1]])
    views = []
    for _ in range(10):
        h = np.eye(3) + rng.normal(0, 0.1, (3, 3))
        mapped = np.c_[points, np.ones(5)] @ h.T
        views.append(mapped[:, :2] / mapped[:, 2:])
    nose = depth.canonical_nose(np.array(views))
    assert np.allclose(nose, nose[0], atol=1e-9)


def test_a_tiny_face_abstains() -> None:
    result = depth.judge(landmark_track(HEAD * 0.15, poses(20, 10, distance=1.0)))
    assert result.decision == "abstain"
    assert "too small" in result.reason


def test_too_few_frames_abstain() -> None:
    result = depth.judge(landmark_track(HEAD, poses(20, 10))[:4])
    assert result.decision == "abstain"


def test_a_face_cut_by_the_frame_edge_is_not_used() -> None:
    track = landmark_track(HEAD, [(0.25, y, 0.0, 0.0) for y in swing(N, 20)])  # huge face, off the frame
    assert depth.judge(track).decision == "abstain"
