"""No motion at all: a photo on a stand (or a paused screen) changes by sensor noise only; a person never
holds that still for a second.

The face's region of the newest frame is cut, in frame coordinates, out of the crops of frames spread over
the last ``window`` seconds, normalised for exposure, and compared with the oldest one. The difference is
split into a smooth part (a blur: what motion or a change of expression makes) and a fine part (what
sensor noise makes); a face whose smooth difference stays at the noise's level, and whose landmarks do not
move, is still. The cue only ever says "attack" or abstains: motion alone proves nothing (a card moves).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from smartlock.engine.liveness.base import (
    CueResult,
    abstain,
    face_size,
    frame_patch,
    landmark_array,
    recent,
    spread_evenly,
    with_landmarks,
)
from smartlock.engine.tracks import Observation

NAME = "motion"
PATCH = 32


@dataclass(frozen=True)
class MotionSettings:
    window: float = 1.0  # seconds
    min_span: float = 0.8  # seconds the frames must cover
    min_frames: int = 8
    min_face: float = 40.0  # box side in frame pixels
    samples: int = 6
    still_change: float = 1.2  # smooth difference (gray levels, after exposure normalisation)
    still_landmarks: float = 0.04  # landmark movement / inter-ocular distance


def _smooth(image: np.ndarray) -> np.ndarray:
    from smartlock.camera.imaging import load_cv2

    return np.asarray(load_cv2().GaussianBlur(image, (0, 0), 1.5))


def measure(observations: Sequence[Observation]) -> tuple[float, float, float] | None:
    """(smooth change, fine change, landmark movement / IOD) over the observations; None without crops."""
    newest = observations[-1]
    left, top, right, bottom = newest.box
    pad_x, pad_y = 0.1 * (right - left), 0.1 * (bottom - top)
    region = (left + pad_x, top + pad_y, right - pad_x, bottom - pad_y)
    patches = []
    for obs in spread_evenly(observations, 6):
        patch = frame_patch(obs, region, PATCH)
        if patch is None:  # the face left its earlier crop: it moved
            return (float("inf"), 0.0, float("inf"))
        patches.append(patch * (128.0 / max(float(patch.mean()), 1.0)))
    if len(patches) < 2:
        return None
    smooth_change, fine_change = 0.0, 0.0
    for patch in patches[1:]:
        diff = patch - patches[0]
        low = _smooth(diff)
        smooth_change = max(smooth_change, float(np.std(low)))
        fine_change = max(fine_change, float(np.std(diff - low)))
    marks = landmark_array(with_landmarks(observations))
    movement = 0.0
    if len(marks) >= 2:
        iod = float(np.median(np.linalg.norm(marks[:, 1] - marks[:, 0], axis=1)))
        centred = marks - np.median(marks, axis=0)
        movement = float(np.percentile(np.linalg.norm(centred, axis=2).mean(axis=1), 90)) / max(iod, 1.0)
    return smooth_change, fine_change, movement


def judge(observations: Sequence[Observation], settings: MotionSettings | None = None) -> CueResult:
    s = settings or MotionSettings()
    window = [obs for obs in recent(observations, s.window) if obs.crop is not None]
    if len(window) < s.min_frames or window[-1].t - window[0].t < s.min_span:
        return abstain(NAME, f"{len(window)} frames with crops over the last {s.window:.1f} s, "
                             f"need {s.min_frames} over {s.min_span:.1f} s")
    if face_size(window[-1]) < s.min_face:
        return abstain(NAME, f"face too small: {face_size(window[-1]):.0f} px, need {s.min_face:.0f}")
    measured = measure(window)
    if measured is None:
        return abstain(NAME, "no crops")
    smooth_change, fine_change, movement = measured
    detail = (f"change {smooth_change:.2f} gray levels (noise {fine_change:.2f}), landmarks moved "
              f"{movement:.3f} IOD in {window[-1].t - window[0].t:.1f} s")
    if smooth_change <= s.still_change and movement <= s.still_landmarks:
        return CueResult(NAME, -1.0, "attack", f"still: {detail}")
    score = float(np.clip(smooth_change / (4 * s.still_change), 0.0, 1.0)) * 0.2
    return CueResult(NAME, score, "abstain", f"moving: {detail}")
