"""The judge combining cues, the 106-landmark depth cue with a stand-in landmarker, and the optional ONNX
classifier with a stand-in session."""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace

import numpy as np
import pytest

from smartlock.engine.liveness import CueResult, LivenessJudge, LivenessSettings, combine, dense
from smartlock.engine.liveness.model import ModelCue
from smartlock.engine.tracks import Observation, Track
from smartlock.errors import ConfigError
from tests.engine.liveness.synth import (
    FRAME,
    HEAD,
    PLANE,
    face_frames,
    landmark_track,
    paint_face,
    project,
    swing,
)
from tests.engine.liveness.synth import texture as make_texture

rng = np.random.default_rng(11)
# a head as a cloud of points at the depths of a face (contour far behind the nose), and the same printed
CLOUD = np.concatenate([HEAD, np.c_[rng.uniform(-70, 70, (101, 1)), rng.uniform(-80, 60, (101, 1)),
                                    rng.uniform(-90, 0, (101, 1))]])
FLAT = CLOUD * np.array([1.0, 1.0, 0.0])


class StandIn(dense.DenseLandmarker):
    """Gives the projected points of a known 3D cloud instead of running the model."""

    def __init__(self, cloud: np.ndarray, poses: list[tuple[float, float, float, float]]) -> None:
        super().__init__(session=SimpleNamespace(get_inputs=lambda: [SimpleNamespace(name="data")]))
        self.cloud, self.poses = cloud, poses

    def _compute(self, obs: Observation) -> np.ndarray:
        noise = np.random.default_rng(obs.seq).normal(0, 0.3, (len(self.cloud), 2))
        return project(self.cloud, *self.poses[obs.seq]) + noise


def swinging(yaw: float, n: int = 48, distance: float = 0.6) -> list[tuple[float, float, float, float]]:
    return list(zip([distance] * n, swing(n, yaw), swing(n, yaw / 2, 2.0), [0.0] * n, strict=True))


def with_crops(track: list[Observation]) -> list[Observation]:
    """The landmark track, each observation given a crop (the dense cue only judges faces it can see)."""
    from dataclasses import replace

    crop = np.zeros((8, 8, 3), np.uint8)
    return [replace(obs, crop=crop) for obs in track]


@pytest.mark.parametrize(("cloud", "expected"), [(CLOUD, "live"), (FLAT, "attack")])
def test_dense_depth_tells_a_head_from_a_print(cloud: np.ndarray, expected: str) -> None:
    poses = swinging(30) if expected == "live" else swinging(50, distance=0.4)  # a card tilted well back
    track = with_crops(landmark_track(HEAD if expected == "live" else PLANE, poses))
    result = dense.judge(track, StandIn(cloud, poses))
    assert result.decision == expected, result.reason


def test_dense_depth_abstains_on_small_faces() -> None:
    poses = swinging(30, distance=3.0)
    result = dense.judge(with_crops(landmark_track(HEAD, poses)), StandIn(CLOUD, poses))
    assert result.decision == "abstain"


class Slipping(StandIn):
    """The landmark model slips on one frame (glare, blur): its points are deformed, not moved as a plane."""

    def __init__(self, cloud: np.ndarray, poses: list, slip_seq: int) -> None:
        super().__init__(cloud, poses)
        self.slip_seq = slip_seq

    def _compute(self, obs: Observation) -> np.ndarray:
        points = super()._compute(obs)
        if obs.seq == self.slip_seq:
            points = points + np.sin(points[:, ::-1] / 7.0) * 4.0  # a smooth warp no homography undoes
        return points


def test_one_frame_where_the_landmarks_slip_does_not_make_a_print_live() -> None:
    """A card turned a little: planar but short of the attack threshold. One deformed frame looks like
    parallax in every pair it is part of; the frames that disagree with both neighbours are dropped."""
    poses = swinging(14, distance=0.6)
    track = with_crops(landmark_track(PLANE, poses))
    slipping = Slipping(FLAT, poses, slip_seq=0)  # the first frame: in the far pairs of the whole window
    without_check = dense.DenseSettings(outlier=0)
    assert dense.judge(track, slipping, without_check).decision == "live"
    result = dense.judge(track, slipping)
    assert result.decision != "live", result.reason


def test_landmarks_are_sampled_by_time_not_by_frame_number() -> None:
    """An engine that analyses only odd frames (busy every other frame) still gets one frame per slot; an
    "every second frame number" rule would have found none."""
    poses = swinging(30)
    track = [obs for obs in with_crops(landmark_track(HEAD, poses)) if obs.seq % 2 == 1]
    chosen = dense.sampled(track, 1 / 12)
    assert len(chosen) == len(track)  # 12 frames a second: every one is the first of its slot
    every_frame = with_crops(landmark_track(HEAD, poses))
    assert [obs.seq for obs in dense.sampled(every_frame, 1 / 12)][:3] == [0, 2, 4]
    assert dense.judge(track, StandIn(CLOUD, poses)).decision == "live"


def cue(name: str, decision: str) -> CueResult:
    return CueResult(name, {"live": 0.8, "attack": -1.0}.get(decision, 0.0), decision, "test")  # type: ignore[arg-type]


def test_an_attack_cue_decides_over_live_evidence() -> None:
    verdict = combine([cue("depth106", "live"), cue("frame", "attack"), cue("blink", "live")], ["depth106"])
    assert verdict.state == "attack" and verdict.decided_by == ["frame"]


def test_only_a_geometric_cue_makes_a_face_live() -> None:
    assert combine([cue("blink", "live"), cue("model", "live")], ["depth106"]).state == "undecided"
    verdict = combine([cue("depth106", "live"), cue("blink", "live"), cue("motion", "abstain")], ["depth106"])
    assert verdict.state == "live" and verdict.decided_by == ["depth106", "blink"]


def test_nothing_decided_is_undecided() -> None:
    verdict = combine([cue("depth106", "abstain"), cue("frame", "abstain")], ["depth106"])
    assert verdict.state == "undecided" and verdict.decided_by == []
    assert verdict.as_dict()["cues"][0]["decision"] == "abstain"  # type: ignore[index]


def judge_for(cloud: np.ndarray, poses: list, **settings: object) -> LivenessJudge:
    """A judge whose 106 points are the stand-in's; without the texture flow's confirmation (these tracks
    carry landmarks only: test_flow.py renders the frames the flow needs)."""
    settings.setdefault("confirm_cues", ())
    return LivenessJudge(LivenessSettings(**settings), landmarker=StandIn(cloud, poses))  # type: ignore[arg-type]


def test_the_judge_takes_a_track_and_finds_a_turning_head_live() -> None:
    poses = swinging(30)
    observations = with_crops(landmark_track(HEAD, poses))
    track = Track(id=1, started=0.0, history=deque(observations, maxlen=48))
    verdict = judge_for(CLOUD, poses, cues=("depth", "depth106")).judge(track)
    assert verdict.state == "live" and "depth106" in verdict.decided_by


def test_the_judge_refuses_a_still_picture() -> None:
    face = make_texture(7, (100, 120), blur=2.0)
    track = face_frames(30, lambda f, i: paint_face(f, face, 270, 120), make_texture(1), seed=1)
    verdict = LivenessJudge(LivenessSettings(cues=("depth", "frame", "motion"))).judge(track)
    assert verdict.state == "attack" and verdict.decided_by == ["motion"]


def test_an_empty_track_is_undecided() -> None:
    assert LivenessJudge(LivenessSettings(cues=("depth",))).judge([]).state == "undecided"


def test_an_unknown_cue_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown liveness cue"):
        LivenessSettings(cues=("depth", "astrology"))


class Classifier:
    """A stand-in ONNX session returning a fixed live probability (as 2-class logits)."""

    def __init__(self, live: float) -> None:
        self.live = live
        self.seen: list[tuple[int, ...]] = []

    def get_inputs(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(name="input", shape=[1, 3, 64, 64])]

    def run(self, names: object, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.seen.append(feed["input"].shape)
        return [np.log(np.array([[1 - self.live, self.live]]))]


def test_a_model_saying_attack_refuses_and_gets_its_documented_input() -> None:
    face = make_texture(7, (100, 120), blur=2.0)
    track = face_frames(24, lambda f, i: paint_face(f, face, 200 + 4 * i, 120), make_texture(1), seed=1)
    session = Classifier(0.02)
    verdict = LivenessJudge(LivenessSettings(cues=("motion",)), model_session=session).judge(track)
    assert verdict.state == "attack" and verdict.decided_by == ["model"]
    assert session.seen and all(shape == (1, 3, 64, 64) for shape in session.seen)
    assert ModelCue(Classifier(0.97)).judge(track).decision == "live"


def test_a_model_with_the_wrong_input_is_refused() -> None:
    bad = SimpleNamespace(get_inputs=lambda: [SimpleNamespace(name="x", shape=[1, 64, 64])])
    with pytest.raises(ConfigError, match="input must be"):
        ModelCue(bad)  # type: ignore[arg-type]


def test_a_missing_model_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        LivenessJudge(LivenessSettings(cues=("depth",), model_path=tmp_path / "absent.onnx"))


def test_the_real_106_point_model_finds_points_on_a_face(faces_dir) -> None:
    import cv2

    from smartlock.engine.tracks import Detection, face_crop

    photo = next(p for p in sorted((faces_dir / "people").iterdir()) if p.is_dir())
    image = cv2.imread(str(sorted(photo.iterdir())[0]))
    frame = cv2.copyMakeBorder(image, 55, 55, 195, 195, cv2.BORDER_CONSTANT)[:FRAME[1], :FRAME[0]]
    box = (195.0 + 75, 55.0 + 60, 195.0 + 175, 55.0 + 190)  # LFW photos are centred on the face
    crop, origin = face_crop(frame, box)  # type: ignore[misc]
    obs = Observation(t=0.0, seq=0, detection=Detection(box, 0.9, None), frame_size=FRAME, crop=crop,
                      crop_origin=origin)
    points = dense.DenseLandmarker().points(obs)
    assert points is not None and points.shape == (106, 2)
    inside = (points[:, 0] > box[0] - 20) & (points[:, 0] < box[2] + 20) & (points[:, 1] > box[1] - 20) \
        & (points[:, 1] < box[3] + 20)
    assert inside.mean() > 0.9


def test_without_the_106_point_cue_the_5_point_depth_cue_decides() -> None:
    poses = swinging(30)
    judge = LivenessJudge(LivenessSettings(cues=("depth", "motion"), confirm_cues=()))  # landmarks only
    assert judge.live_cues == ("depth",)
    assert judge.judge(landmark_track(HEAD, poses)).state == "live"


def test_a_cue_that_fails_leaves_the_track_not_live_and_the_engine_running(caplog) -> None:
    """A cue raising (a degenerate frame, a model error) must neither crash the engine nor let the other
    cues' "live" through: it might have been the one to see the attack."""
    poses = swinging(30)
    observations = with_crops(landmark_track(HEAD, poses))
    judge = judge_for(CLOUD, poses, cues=("depth", "depth106", "motion"))
    assert judge.judge(observations).state == "live"

    def broken(observations: object) -> CueResult:
        raise ValueError("degenerate frame")

    judge._cues.append(("frame", broken))
    with caplog.at_level("WARNING"):
        first = judge.judge(observations)
        second = judge.judge(observations)
    assert first.state == second.state == "undecided"
    failed = next(cue for cue in first.cues if cue.name == "frame")
    assert failed.decision == "abstain" and "failed" in failed.reason
    assert sum("liveness cue frame failed" in r.message for r in caplog.records) == 1  # logged once


def test_a_failing_confirming_cue_confirms_nothing() -> None:
    poses = swinging(30)
    observations = with_crops(landmark_track(HEAD, poses))
    judge = judge_for(CLOUD, poses, cues=("depth106",), confirm_cues=("depth",))
    assert judge.judge(observations).state == "live"

    def broken(observations: object) -> CueResult:
        raise RuntimeError("model error")

    judge._confirm = [("depth", broken)]
    assert judge.judge(observations).state == "undecided"


def test_a_cue_cannot_both_decide_and_confirm_live() -> None:
    with pytest.raises(ConfigError, match="both decide and confirm"):
        LivenessSettings(live_cues=("depth106",), confirm_cues=("depth106",))
