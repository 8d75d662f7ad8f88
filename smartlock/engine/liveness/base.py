"""What every liveness cue returns, and the geometry the cues share (landmarks, face size, crops in frame
coordinates)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from smartlock.engine.tracks import Observation

Decision = Literal["live", "attack", "abstain"]
State = Literal["live", "attack", "undecided"]


@dataclass(frozen=True)
class CueResult:
    """One cue's judgement of a track. ``score`` is evidence for a live face in [-1, 1] (negative: attack);
    ``reason`` says in words what was measured, for the event log."""

    name: str
    score: float
    decision: Decision
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "score": round(self.score, 3), "decision": self.decision,
                "reason": self.reason}


@dataclass(frozen=True)
class Verdict:
    """The judge's verdict on a track: the state, every cue's result, and the cues that decided it."""

    state: State
    cues: list[CueResult] = field(default_factory=list)
    decided_by: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state, "decided_by": list(self.decided_by),
                "cues": [cue.as_dict() for cue in self.cues]}


def abstain(name: str, reason: str) -> CueResult:
    return CueResult(name=name, score=0.0, decision="abstain", reason=reason)


def with_landmarks(observations: Sequence[Observation]) -> list[Observation]:
    return [obs for obs in observations if obs.landmarks is not None and np.shape(obs.landmarks) == (5, 2)]


def landmark_array(observations: Sequence[Observation]) -> np.ndarray:
    """(N, 5, 2) float64 landmarks of observations that have them."""
    return np.stack([np.asarray(obs.landmarks, np.float64) for obs in observations]) if observations \
        else np.zeros((0, 5, 2))


def face_size(obs: Observation) -> float:
    """The face's size in frame pixels: the smaller side of the detector's box."""
    return float(min(obs.detection.width, obs.detection.height))


def recent(observations: Sequence[Observation], seconds: float) -> list[Observation]:
    """The observations of the last ``seconds`` (by frame time), oldest first."""
    if not observations:
        return []
    end = observations[-1].t
    return [obs for obs in observations if end - obs.t <= seconds + 1e-9]


def spread_evenly(items: Sequence[Observation], count: int) -> list[Observation]:
    if len(items) <= count:
        return list(items)
    index = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in index]


def frame_patch(obs: Observation, region: tuple[float, float, float, float], size: int) -> np.ndarray | None:
    """The frame region (left, top, right, bottom in frame pixels) cut from the observation's crop and
    resampled to ``size`` x ``size`` gray float32; None when the crop does not cover it."""
    if obs.crop is None or obs.crop.size == 0:
        return None
    x0, y0, scale = obs.crop_origin
    left, top = (region[0] - x0) * scale, (region[1] - y0) * scale
    right, bottom = (region[2] - x0) * scale, (region[3] - y0) * scale
    height, width = obs.crop.shape[:2]
    if left < -0.5 or top < -0.5 or right > width + 0.5 or bottom > height + 0.5 or right <= left:
        return None
    patch, _ = region_patch(obs, region, size)
    return patch.astype(np.float32)


def region_patch(obs: Observation, region: tuple[float, float, float, float], size: int,
                 coverage: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """The frame region cut from the observation's crop (which must exist) and resampled to ``size`` x
    ``size`` gray uint8, the crop's edge pixels repeated where the region reaches past it; with ``coverage``,
    also where the crop covered it (a face near the frame's edge has a crop cut by the edge)."""
    from smartlock.camera.imaging import load_cv2

    cv2 = load_cv2()
    assert obs.crop is not None
    x0, y0, scale = obs.crop_origin
    left, top = (region[0] - x0) * scale, (region[1] - y0) * scale
    right, bottom = (region[2] - x0) * scale, (region[3] - y0) * scale
    gray = obs.crop if obs.crop.ndim == 2 else cv2.cvtColor(obs.crop, cv2.COLOR_BGR2GRAY)
    sx, sy = (right - left) / size, (bottom - top) / size
    matrix = np.array([[sx, 0, left + 0.5 * sx - 0.5], [0, sy, top + 0.5 * sy - 0.5]], dtype=np.float64)
    shape = gray.shape[:2]
    if sx > 1.5:  # shrinking: low-pass first so the sampling does not alias
        gray = cv2.GaussianBlur(gray, (0, 0), 0.5 * sx)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    patch = np.asarray(cv2.warpAffine(gray, matrix, (size, size), flags=flags,
                                      borderMode=cv2.BORDER_REPLICATE))
    if not coverage:
        return patch, None
    inside = cv2.warpAffine(np.full(shape, 255, np.uint8), matrix, (size, size), flags=flags,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return patch, np.asarray(inside) == 255


def parallax_summary(near: Sequence[float], far: Sequence[float],
                     views: Sequence[float]) -> tuple[float, float, float] | None:
    """What the depth cues decide on, from per-pair residuals off one homography (in IODs): ``parallax``, the
    90th percentile over pairs of frames far apart; ``noise``, the median over neighbouring frames; and
    ``viewpoint``, the 90th percentile of the far pairs' change of view. None without both kinds of pairs."""
    near_a, far_a, views_a = (np.asarray(v, dtype=np.float64) for v in (near, far, views))
    near_a, far_a, views_a = (v[np.isfinite(v)] for v in (near_a, far_a, views_a))
    if not len(far_a) or not len(near_a) or not len(views_a):
        return None
    return float(np.percentile(far_a, 90)), float(np.median(near_a)), float(np.percentile(views_a, 90))


def depth_decision(name: str, summary: tuple[float, float, float], *, live_parallax: float,
                   live_ratio: float, live_view_ratio: float, planar: bool, detail: str) -> CueResult:
    """The depth cues' rule: live when the parallax clears its floor, ``live_ratio`` x the noise and
    ``live_view_ratio`` x the viewpoint change; else attack when the caller found it ``planar``; else
    abstain."""
    parallax, noise, viewpoint = summary
    score = float(np.clip(2 * parallax / max(live_parallax, 1e-6) - 1, -1, 1))
    if parallax >= max(live_parallax, live_ratio * noise, live_view_ratio * viewpoint):
        return CueResult(name, max(score, 0.5), "live", f"3D: {detail}")
    if planar:
        return CueResult(name, min(score, -0.5), "attack", f"planar: {detail}")
    return CueResult(name, score, "abstain", f"not yet: {detail}")
