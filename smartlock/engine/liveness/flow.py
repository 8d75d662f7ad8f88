"""Depth from the motion of the face's own texture: points tracked by optical flow, not a landmark model.

The depth106 cue reads 106 points a neural network places on the face; on a tilted photo that network
sometimes moves its points as if a head had turned, and the photo passes for depth. This cue asks the
pixels instead: corners of the face's texture (eyes, brows, nostrils, mouth, skin marks) in one frame are
found again in a frame at least ``gap`` seconds later by pyramidal Lucas-Kanade, after the later frame has
been warped onto the earlier one (first by the five landmarks' similarity, then by the homography the first
pass found, so what is left to measure is small). On a print or a screen every texture point moves by one
homography, so the residual is the flow's noise, however much the plane turned; on a head the nose, the
cheeks and the jaw sit at different depths and leave a residual that grows with the change of viewpoint.

Statistics, in inter-ocular distances: ``parallax`` (75th percentile of the points' distances from the
least-median homography, 90th percentile over pairs of frames far apart), ``noise`` (the same for frames
``near_gap`` apart) and ``viewpoint`` (the points' distances from the best similarity: how much the view
changed at all). Frames are taken from fixed slots of the clock (``interval``), so a pair once measured is
cached and each judge call measures only the pairs of a new slot. A face too small or cut by the frame's
edge is skipped; too few frames or texture points: the cue abstains.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from smartlock.engine.liveness.base import (
    CueResult,
    abstain,
    depth_decision,
    parallax_summary,
    recent,
    region_patch,
)
from smartlock.engine.liveness.dense import sampled, similarity_residual
from smartlock.engine.tracks import Observation

NAME = "flow"
Pair = tuple[np.ndarray, np.ndarray]  # matching texture points (N, 2) in two frames, frame pixels


@dataclass(frozen=True)
class FlowSettings:
    interval: float = 0.25  # seconds: one frame per slot this long is compared with the others
    window: float = 2.0
    min_frames: int = 3
    gap: float = 0.4  # seconds between the frames of a "far apart" pair, at least
    near_gap: float = 1 / 12  # seconds: noise is measured between an anchor and the frame this much later
    min_face: float = 40.0  # box side in frame pixels (the gate's usable size)
    edge_margin: float = 0.05
    context: float = 1.4  # the region compared: this x the face box, centred on it
    max_patch: int = 160  # the region is resampled to at most this many pixels a side
    corners: int = 60
    window_px: int = 15  # Lucas-Kanade window
    levels: int = 2  # pyramid levels above the base
    max_error: float = 0.7  # pixels: a point tracked forward and back must come home within this
    min_points: int = 8
    quantile: float = 75.0
    live_parallax: float = 0.012
    live_ratio: float = 2.0  # parallax / noise: a soft print in poor light reaches the floor on noise alone
    live_view_ratio: float = 0.5  # parallax / viewpoint change
    attack_viewpoint: float = 0.04
    attack_view_ratio: float = 0.25  # a plane's parallax stays under this share of the viewpoint change


class FlowTracker:
    """Measures pairs of observations (cached by the pair: frames on fixed clock slots recur)."""

    def __init__(self, settings: FlowSettings | None = None, cache_size: int = 2048) -> None:
        self.settings = settings or FlowSettings()
        self._cache: OrderedDict[tuple[object, ...], Pair | None] = OrderedDict()
        self.cache_size = cache_size

    def pair(self, a: Observation, b: Observation) -> Pair | None:
        key = (*_key(a), *_key(b))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        result = self._measure(a, b)
        self._cache[key] = result
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return result

    def _measure(self, a: Observation, b: Observation) -> Pair | None:
        s = self.settings
        if a.landmarks is None or b.landmarks is None:
            return None
        start = _similarity(np.asarray(a.landmarks, np.float64), np.asarray(b.landmarks, np.float64))
        if start is None:
            return None
        region_a = Square.around(a.box, s.context, s.max_patch)
        region_b = Square.covering(_apply(start, region_a.corners()), s.max_patch * 1.5)  # a's, carried over
        if min(region_a.side, region_b.side) < 1.0:  # degenerate landmarks: no region to compare
            return None
        patch_a, seen_a = region_patch(a, region_a.bounds, region_a.size, coverage=True)
        patch_b, _ = region_patch(b, region_b.bounds, region_b.size)
        assert seen_a is not None
        seeds = self._seeds(patch_a, seen_a & _face_mask(a.box, region_a))
        if seeds is None:
            return None
        matched = self._register(patch_a, patch_b, seeds, region_b.from_frame() @ start @ region_a.to_frame())
        if matched is None:
            return None
        points_a, points_b = matched
        return _apply(region_a.to_frame(), points_a), _apply(region_b.to_frame(), points_b)

    def _seeds(self, patch: np.ndarray, where: np.ndarray) -> np.ndarray | None:
        """Corners of the texture to follow (patch pixels), or None when the face has too few."""
        from smartlock.camera.imaging import load_cv2

        cv2 = load_cv2()
        s = self.settings
        mask = np.where(where, 255, 0).astype(np.uint8)
        found = cv2.goodFeaturesToTrack(patch, s.corners, 0.01, max(2.0, patch.shape[0] / 25), mask=mask)
        if found is None or len(found) < s.min_points:
            return None
        return np.asarray(found, np.float64).reshape(-1, 2)

    def _register(self, patch_a: np.ndarray, patch_b: np.ndarray, points_a: np.ndarray,
                  warp: np.ndarray) -> Pair | None:
        """Where ``points_a`` went in ``patch_b``: ``patch_b`` warped onto ``patch_a`` by ``warp`` (patch a to
        patch b), Lucas-Kanade for what is left, then again by the homography that pass found."""
        from smartlock.camera.imaging import load_cv2

        cv2 = load_cv2()
        size = (patch_a.shape[1], patch_a.shape[0])
        points_b = points_a
        for _ in range(2):
            warped = cv2.warpPerspective(patch_b, warp, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                         borderMode=cv2.BORDER_REPLICATE)
            tracked = self._track(patch_a, warped, points_a)
            if tracked is None:
                return None
            kept, flowed = tracked
            points_a = points_a[kept]
            points_b = cv2.perspectiveTransform(flowed.reshape(-1, 1, 2), warp).reshape(-1, 2)
            homography, _ = cv2.findHomography(points_a.astype(np.float32), points_b.astype(np.float32),
                                               cv2.LMEDS)
            if homography is None:
                return None
            warp = homography
        return points_a, points_b

    def _track(self, gray_a: np.ndarray, gray_b: np.ndarray,
               points: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Lucas-Kanade forward and back; (mask of points kept, their positions in b) or None."""
        from smartlock.camera.imaging import load_cv2

        cv2 = load_cv2()
        s = self.settings
        params = {"winSize": (s.window_px, s.window_px), "maxLevel": s.levels,
                  "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)}
        start = points.astype(np.float32).reshape(-1, 1, 2)
        forward, ok_forward, _ = cv2.calcOpticalFlowPyrLK(gray_a, gray_b, start, None, **params)
        back, ok_back, _ = cv2.calcOpticalFlowPyrLK(gray_b, gray_a, forward, None, **params)
        error = np.linalg.norm((back - start).reshape(-1, 2), axis=1)
        kept = (ok_forward.ravel() == 1) & (ok_back.ravel() == 1) & (error < s.max_error)
        if kept.sum() < s.min_points:
            return None
        return kept, forward.reshape(-1, 2)[kept].astype(np.float64)


def planar_residual(a: np.ndarray, b: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of the points' distances from the least-median homography taking ``a`` to ``b``."""
    from smartlock.camera.imaging import load_cv2

    cv2 = load_cv2()
    homography, _ = cv2.findHomography(a.astype(np.float32), b.astype(np.float32), cv2.LMEDS)
    if homography is None:
        return float("nan")
    mapped = cv2.perspectiveTransform(a.reshape(-1, 1, 2).astype(np.float64), homography).reshape(-1, 2)
    return float(np.percentile(np.linalg.norm(mapped - b, axis=1), quantile))


def judge(observations: Sequence[Observation], tracker: FlowTracker) -> CueResult:
    from smartlock.engine.liveness.depth import inside

    s = tracker.settings
    usable = [obs for obs in recent(observations, s.window)
              if obs.crop is not None and obs.landmarks is not None and inside(obs, s.edge_margin)
              and min(obs.detection.width, obs.detection.height) >= s.min_face]
    anchors = sampled(usable, s.interval)
    if len(anchors) < s.min_frames:
        return abstain(NAME, f"{len(anchors)} usable frames (faces of {s.min_face:.0f}+ px inside the "
                             f"frame), need {s.min_frames}")
    iod = float(np.median([np.linalg.norm(np.asarray(o.landmarks)[1] - np.asarray(o.landmarks)[0])
                           for o in anchors]))
    if not iod > 0:
        return abstain(NAME, "no eyes to measure by")
    near, far, views = [], [], []
    for anchor in anchors:  # noise: each anchor against the first usable frame near_gap later
        nxt = next((obs for obs in usable if obs.t >= anchor.t + s.near_gap - 1e-6), None)
        measured = tracker.pair(anchor, nxt) if nxt is not None and nxt.t - anchor.t < s.gap else None
        if measured is not None:
            near.append(planar_residual(*measured, s.quantile) / iod)
    for i, a in enumerate(anchors):
        for b in anchors[i + 1:]:
            if b.t - a.t < s.gap:
                continue
            measured = tracker.pair(a, b)
            if measured is not None:
                far.append(planar_residual(*measured, s.quantile) / iod)
                views.append(similarity_residual(*measured) / iod)
    summary = parallax_summary(near, far, views)
    if summary is None:
        return abstain(NAME, f"no textured frames {s.gap:.1f} s apart yet")
    parallax, noise, viewpoint = summary
    detail = (f"texture off the plane {parallax:.3f} IOD (neighbours {noise:.3f}), viewpoint change "
              f"{viewpoint:.3f}, {len(far)} pairs")
    planar = viewpoint >= s.attack_viewpoint and parallax <= s.attack_view_ratio * viewpoint
    return depth_decision(NAME, summary, live_parallax=s.live_parallax, live_ratio=s.live_ratio,
                          live_view_ratio=s.live_view_ratio, planar=planar, detail=detail)


def _key(obs: Observation) -> tuple[object, ...]:
    return (obs.seq, obs.t, *obs.box)  # two faces of one frame share seq and t, not the box


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """The least-median similarity (3x3) taking the five landmarks ``src`` onto ``dst``."""
    from smartlock.camera.imaging import load_cv2

    cv2 = load_cv2()
    matrix, _ = cv2.estimateAffinePartial2D(src.astype(np.float32), dst.astype(np.float32),
                                            method=cv2.LMEDS)
    return None if matrix is None else np.vstack([matrix, [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Square:
    """A square of the frame (``left``, ``top``, ``side`` in frame pixels) seen as a ``size`` px patch."""

    left: float
    top: float
    side: float
    size: int

    @classmethod
    def around(cls, box: tuple[float, float, float, float], context: float, max_size: float) -> Square:
        """``context`` x the box's larger side, centred on the box."""
        left, top, right, bottom = box
        side = context * max(right - left, bottom - top)
        return cls((left + right) / 2 - side / 2, (top + bottom) / 2 - side / 2, side,
                   int(min(max_size, max(48, round(side)))))

    @classmethod
    def covering(cls, points: np.ndarray, max_size: float) -> Square:
        """The square from the points' top-left corner that spans their larger extent."""
        side = float(max(np.ptp(points[:, 0]), np.ptp(points[:, 1])))
        return cls(float(points[:, 0].min()), float(points[:, 1].min()), side,
                   int(min(max_size, max(48, round(side)))))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.left, self.top, self.left + self.side, self.top + self.side)

    def corners(self) -> np.ndarray:
        right, bottom = self.left + self.side, self.top + self.side
        return np.array([[self.left, self.top], [right, self.top], [right, bottom], [self.left, bottom]])

    def to_frame(self) -> np.ndarray:
        """3x3: patch pixels to frame pixels."""
        step = self.side / self.size
        return np.array([[step, 0.0, self.left], [0.0, step, self.top], [0.0, 0.0, 1.0]])

    def from_frame(self) -> np.ndarray:
        step = self.side / self.size
        return np.array([[1 / step, 0.0, -self.left / step], [0.0, 1 / step, -self.top / step],
                         [0.0, 0.0, 1.0]])


def _face_mask(box: tuple[float, float, float, float], region: Square) -> np.ndarray:
    """The patch pixels inside the face (the box less its edges: not the background, the hair or the neck)."""
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    step = region.side / region.size
    x0, x1 = (left + 0.12 * width - region.left) / step, (right - 0.12 * width - region.left) / step
    y0, y1 = (top + 0.12 * height - region.top) / step, (bottom - 0.05 * height - region.top) / step
    mask = np.zeros((region.size, region.size), bool)
    mask[max(0, int(y0)):max(0, int(y1)), max(0, int(x0)):max(0, int(x1))] = True
    return mask


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A 3x3 affine ``matrix`` applied to points (N, 2)."""
    return np.asarray(points, np.float64) @ matrix[:2, :2].T + matrix[:2, 2]
