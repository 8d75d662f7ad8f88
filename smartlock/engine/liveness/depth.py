"""Depth from motion: a print or a screen is a plane, a head is not.

Four of the five landmarks (the eyes and the mouth corners) fix a homography; for a plane, the nose maps
through it like every other point of the plane, so the nose's position *in the frame of the four points*
(each frame's quad mapped onto one canonical quad) stays where it is however the plane is turned, moved or
tilted. On a head the nose tip stands ~30 mm in front of the eyes and mouth, so it slides across the quad
as the viewpoint changes — turning, nodding, or just walking toward a camera mounted above the face.

Statistics, in canonical units (about one inter-ocular distance): ``parallax`` is the spread of the
canonical nose position over the track (95th percentile of pairwise distances after a running median),
``jitter`` the detector's frame-to-frame noise of it, and ``viewpoint`` the spread of the quad's own shape
(the mouth corners in the eyes' similarity frame), which shows that the face was seen from different
angles at all. Parallax well above jitter → live; a clear viewpoint change with no parallax → attack;
otherwise (too few frames, too small a face, no viewpoint change) the cue abstains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from smartlock.engine.liveness.base import CueResult, abstain, landmark_array, with_landmarks
from smartlock.engine.tracks import Observation

NAME = "depth"
# canonical quad: left eye, right eye, left and right mouth corner of an average frontal face (IOD = 1)
CANONICAL = np.array([[-0.5, 0.0], [0.5, 0.0], [-0.4, 1.15], [0.4, 1.15]])
QUAD = [0, 1, 3, 4]


@dataclass(frozen=True)
class DepthSettings:
    min_frames: int = 8
    min_iod: float = 12.0  # inter-ocular distance in frame pixels below which landmarks are too coarse
    window: float = 2.0  # seconds of history looked at
    live_parallax: float = 0.11
    live_ratio: float = 3.0  # parallax / jitter
    live_view_ratio: float = 0.9  # parallax / viewpoint change: a tilted print's landmarks drift a little
    attack_viewpoint: float = 0.3
    attack_parallax: float = 0.05
    attack_ratio: float = 3.0  # viewpoint / viewpoint jitter
    edge_margin: float = 0.05  # box sizes: faces closer to the frame's edge are cut and skipped


def inside(obs: Observation, margin: float) -> bool:
    """Whether the face box stays ``margin`` box sizes inside the frame (unknown frame size: yes)."""
    width, height = obs.frame_size
    if width <= 0 or height <= 0:
        return True
    left, top, right, bottom = obs.box
    pad = margin * max(right - left, bottom - top)
    return left >= pad and top >= pad and right <= width - pad and bottom <= height - pad


def homographies(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Exact homographies (N, 3, 3) taking each of N 4-point sets ``src`` (N, 4, 2) onto ``dst`` (4, 2)
    or (N, 4, 2); NaN where a quad is degenerate."""
    n = len(src)
    dst = np.broadcast_to(dst, src.shape)
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    zeros, ones = np.zeros_like(x), np.ones_like(x)
    rows_u = np.stack([x, y, ones, zeros, zeros, zeros, -u * x, -u * y], axis=-1)
    rows_v = np.stack([zeros, zeros, zeros, x, y, ones, -v * x, -v * y], axis=-1)
    a = np.concatenate([rows_u, rows_v], axis=1)  # (N, 8, 8)
    b = np.concatenate([u, v], axis=1)  # (N, 8)
    result = np.full((n, 3, 3), np.nan)
    good = np.abs(np.linalg.det(a)) > 1e-9
    if good.any():
        h = np.linalg.solve(a[good], b[good][..., None])[..., 0]
        result[good] = np.concatenate([h, np.ones((len(h), 1))], axis=1).reshape(-1, 3, 3)
    return result


def apply(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply homographies (N, 3, 3) to one point each (N, 2)."""
    homogeneous = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    mapped = np.einsum("nij,nj->ni", h, homogeneous)
    return mapped[:, :2] / mapped[:, 2:3]


def canonical_nose(landmarks: np.ndarray) -> np.ndarray:
    """The nose's position in the canonical quad's frame, per frame (N, 2)."""
    return apply(homographies(landmarks[:, QUAD], CANONICAL), landmarks[:, 2])


def quad_shape(landmarks: np.ndarray) -> np.ndarray:
    """The mouth corners in the eyes' similarity frame (eyes at (-0.5, 0) and (0.5, 0)), (N, 4)."""
    left, right = landmarks[:, 0], landmarks[:, 1]
    axis = right - left
    scale = np.linalg.norm(axis, axis=1, keepdims=True)
    ex = axis / scale
    ey = np.stack([-ex[:, 1], ex[:, 0]], axis=1)
    center = (left + right) / 2
    out = []
    for index in (3, 4):
        d = landmarks[:, index] - center
        out.append(np.stack([(d * ex).sum(axis=1), (d * ey).sum(axis=1)], axis=1) / scale)
    return np.concatenate(out, axis=1)


def running_median(values: np.ndarray, width: int = 5) -> np.ndarray:
    if len(values) < width:
        return values
    pad = width // 2
    padded = np.concatenate([values[:1].repeat(pad, axis=0), values, values[-1:].repeat(pad, axis=0)])
    windows = np.stack([padded[i:i + len(values)] for i in range(width)])
    return np.median(windows, axis=0)


def spread(values: np.ndarray) -> float:
    """95th percentile of pairwise distances (rows are points)."""
    if len(values) < 2:
        return 0.0
    d = np.linalg.norm(values[:, None, :] - values[None, :, :], axis=-1)
    return float(np.percentile(d[np.triu_indices(len(values), 1)], 95))


def jitter(values: np.ndarray) -> float:
    """Median frame-to-frame distance: the detector's noise when the pose changes slowly."""
    if len(values) < 2:
        return 0.0
    return float(np.median(np.linalg.norm(np.diff(values, axis=0), axis=1)))


def measure(observations: Sequence[Observation]) -> tuple[float, float, float, float] | None:
    """(parallax, jitter, viewpoint, viewpoint jitter) of a track, or None when no frame is usable."""
    marks = landmark_array(observations)
    if len(marks) == 0:
        return None
    nose = canonical_nose(marks)
    shape = quad_shape(marks)
    ok = np.isfinite(nose).all(axis=1) & np.isfinite(shape).all(axis=1) & (np.abs(nose) < 5).all(axis=1)
    nose, shape = nose[ok], shape[ok]
    if len(nose) < 2:
        return None
    return (spread(running_median(nose)), jitter(nose), spread(running_median(shape)), jitter(shape))


def judge(observations: Sequence[Observation], settings: DepthSettings | None = None) -> CueResult:
    s = settings or DepthSettings()
    # a face cut by the frame's edge has guessed landmarks
    usable = [obs for obs in with_landmarks(observations) if inside(obs, s.edge_margin)]
    if usable:
        end = usable[-1].t
        usable = [obs for obs in usable if end - obs.t <= s.window + 1e-9]
    if len(usable) < s.min_frames:
        return abstain(NAME, f"{len(usable)} frames with landmarks, need {s.min_frames}")
    marks = landmark_array(usable)
    iod = float(np.median(np.linalg.norm(marks[:, 1] - marks[:, 0], axis=1)))
    if iod < s.min_iod:
        return abstain(NAME, f"face too small: eyes {iod:.0f} px apart, need {s.min_iod:.0f}")
    measured = measure(usable)
    if measured is None:
        return abstain(NAME, "landmarks degenerate")
    parallax, noise, viewpoint, view_noise = measured
    ratio = parallax / max(noise, 1e-6)
    detail = (f"nose parallax {parallax:.3f} (jitter {noise:.3f}), viewpoint change {viewpoint:.3f} "
              f"over {len(usable)} frames")
    score = float(np.clip(2 * parallax / max(s.live_parallax, 1e-6) - 1, -1, 1))
    if (parallax >= s.live_parallax and ratio >= s.live_ratio
            and parallax >= s.live_view_ratio * viewpoint):
        return CueResult(NAME, max(score, 0.5), "live", f"3D: {detail}")
    if (viewpoint >= s.attack_viewpoint and viewpoint >= s.attack_ratio * view_noise
            and parallax <= s.attack_parallax):
        return CueResult(NAME, min(score, -0.5), "attack", f"planar: {detail}")
    return CueResult(NAME, score, "abstain", f"not yet: {detail}")
