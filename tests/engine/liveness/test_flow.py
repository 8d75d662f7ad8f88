"""The texture-flow depth cue on rendered surfaces whose shape is known: a head-like relief, a flat card."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from smartlock.engine.liveness import LivenessJudge, LivenessSettings, flow
from smartlock.engine.tracks import Observation
from tests.engine.liveness.synth import FRAME, flat_depth, head_depth, surface_frames, swing, texture
from tests.engine.liveness.test_judge import CLOUD, StandIn

N = 36  # 1.5 s at 24 fps


def swinging(yaw: float, distance: float = 0.6) -> list[tuple[float, float, float, float]]:
    return list(zip([distance] * N, swing(N, yaw), swing(N, yaw / 2, 2.0), [0.0] * N, strict=True))


@cache
def rendered(shape: str, yaw: float, distance: float = 0.6) -> tuple[Observation, ...]:
    depth = head_depth if shape == "head" else flat_depth
    skin = texture(3, (140, 180), blur=1.5)
    return tuple(surface_frames(depth, skin, swinging(yaw, distance), texture(1)))


def test_a_head_turning_shows_texture_off_the_plane() -> None:
    result = flow.judge(rendered("head", 20), flow.FlowTracker())
    assert result.decision == "live", result.reason


def test_a_head_barely_moving_is_still_seen_in_depth() -> None:
    result = flow.judge(rendered("head", 8), flow.FlowTracker())
    assert result.decision == "live", result.reason


@pytest.mark.parametrize("yaw", [30, 45])
def test_a_card_turned_in_3d_is_planar(yaw: float) -> None:
    result = flow.judge(rendered("card", yaw), flow.FlowTracker())
    assert result.decision == "attack", result.reason


def test_a_card_turned_a_little_is_never_live() -> None:
    result = flow.judge(rendered("card", 6), flow.FlowTracker())
    assert result.decision != "live", result.reason


def test_a_small_face_abstains() -> None:
    result = flow.judge(rendered("head", 20, distance=2.5), flow.FlowTracker())
    assert result.decision == "abstain" and "usable frames" in result.reason


def test_too_short_a_track_abstains() -> None:
    result = flow.judge(rendered("head", 20)[:8], flow.FlowTracker())
    assert result.decision == "abstain"


def test_a_face_whose_surroundings_leave_the_frame_is_still_measured() -> None:
    """A large face low in the frame: the region compared reaches past the frame's bottom edge, where the
    tracker's crop stops; the points are taken where the crop saw something."""
    poses = [(0.5, yaw, pitch, roll) for _, yaw, pitch, roll in swinging(20)]
    skin = texture(3, (140, 180), blur=1.5)
    observations = surface_frames(head_depth, skin, poses, texture(1))
    lowest = max(obs.box[3] + 0.06 * (obs.box[3] - obs.box[1]) for obs in observations)
    low = [_shifted(obs, dy=FRAME[1] - lowest) for obs in observations]  # inside the cue's edge margin
    assert any(obs.box[3] + 0.2 * (obs.box[3] - obs.box[1]) > FRAME[1] for obs in low)
    result = flow.judge(low, flow.FlowTracker())
    assert result.decision == "live", result.reason


def test_each_pair_of_frames_is_measured_once() -> None:
    tracker = flow.FlowTracker()
    calls: list[tuple[int, int]] = []
    measure = tracker._measure

    def counted(a: Observation, b: Observation) -> object:
        calls.append((a.seq, b.seq))
        return measure(a, b)

    tracker._measure = counted  # type: ignore[method-assign]
    frames = rendered("head", 20)
    flow.judge(frames[:-1], tracker)
    first = len(calls)
    flow.judge(frames, tracker)
    assert first > 0 and len(calls) - first <= 2 and len(calls) == len(set(calls))


def test_the_judge_does_not_let_a_card_pass_on_depth_the_landmark_model_invents() -> None:
    """The 106-point model placing a head's points on a tilted card (what makes cards pass depth106): the
    texture flow sees the plane, so the card is not live."""
    only_depth106 = LivenessSettings(cues=("depth106",), confirm_cues=())
    confirmed = LivenessSettings(cues=("depth106",))  # the default confirmation by the flow
    for yaw, expected in ((30, "attack"), (12, "undecided")):  # turned a little: the flow cannot tell yet
        stand_in = StandIn(CLOUD, swinging(yaw))  # a head's 3D points, whatever the frame shows
        card = list(rendered("card", yaw))
        assert LivenessJudge(only_depth106, landmarker=stand_in).judge(card).state == "live"
        verdict = LivenessJudge(confirmed, landmarker=stand_in).judge(card)
        assert verdict.state == expected
        assert verdict.decided_by == (["flow"] if expected == "attack" else [])
    head = LivenessJudge(confirmed, landmarker=StandIn(CLOUD, swinging(20))).judge(list(rendered("head", 20)))
    assert head.state == "live" and head.decided_by == ["depth106", "flow"]
    assert [cue.name for cue in head.cues] == ["depth106", "flow"]  # the event shows what flow measured


def _shifted(obs: Observation, dy: float) -> Observation:
    """The same observation as if the face sat ``dy`` pixels lower (the crop cut by the frame's bottom)."""
    from dataclasses import replace

    from smartlock.engine.tracks import Detection

    left, top, right, bottom = obs.box
    x0, y0, scale = obs.crop_origin
    assert obs.crop is not None
    visible = round((FRAME[1] - (y0 + dy)) * scale)  # crop rows still inside the frame
    crop = np.ascontiguousarray(obs.crop[:max(1, min(obs.crop.shape[0], visible))])
    marks = None if obs.landmarks is None else np.asarray(obs.landmarks) + np.array([0.0, dy], np.float32)
    detection = Detection((left, top + dy, right, bottom + dy), obs.detection.score, marks)
    return replace(obs, detection=detection, crop=crop, crop_origin=(x0, y0 + dy, scale))


def test_a_soft_print_in_poor_light_is_not_live() -> None:
    """Little texture (a soft print) and strong sensor noise (a dim hallway): the flow's own noise reaches
    its live floor, so a plane must clear its neighbouring frames' residual too."""
    skin = texture(3, (140, 180), blur=4.0)
    for yaw in (0, 6, 12, 20):
        card = surface_frames(flat_depth, skin, swinging(yaw), texture(1), noise=4.0, seed=yaw)
        result = flow.judge(card, flow.FlowTracker())
        assert result.decision != "live", (yaw, result.reason)
    head = surface_frames(head_depth, skin, swinging(20), texture(1), noise=4.0)
    assert flow.judge(head, flow.FlowTracker()).decision == "live"


def test_two_faces_of_one_frame_are_measured_apart() -> None:
    """A head and a card in the same frames (same frame number and time): the pairs are cached per face."""
    tracker = flow.FlowTracker()
    head, card = rendered("head", 20), rendered("card", 45)
    assert flow.judge(head, tracker).decision == "live"
    assert flow.judge(card, tracker).decision == "attack"


def test_degenerate_landmarks_are_not_measured() -> None:
    a, b = rendered("head", 20)[0], rendered("head", 20)[12]
    from dataclasses import replace

    from smartlock.engine.tracks import Detection

    collapsed = replace(b, detection=Detection(b.box, 0.9, np.zeros((5, 2), np.float32)))
    assert flow.FlowTracker().pair(a, collapsed) is None
