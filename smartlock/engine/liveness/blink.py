"""Blink: evidence for a live face, never required (a blink lasts 2-4 frames at 24 fps and people do not
blink on cue).

Around each eye landmark a small patch (0.4 inter-ocular distances wide) is compared with the whole face:
a closing lid covers the dark iris, so both eye patches brighten relative to the face for a few frames and
then return. A rise of both eyes, well above the series' own noise, lasting 1-5 frames → live evidence;
otherwise the cue abstains. A replayed video blinks too, which is why the judge never unlocks on a blink
alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from smartlock.engine.liveness.base import CueResult, abstain, recent, with_landmarks
from smartlock.engine.tracks import Observation

NAME = "blink"


@dataclass(frozen=True)
class BlinkSettings:
    window: float = 2.0
    min_frames: int = 10
    min_iod: float = 20.0
    max_duration: int = 5  # frames
    rise: float = 4.0  # gray levels, at least
    noise_factor: float = 4.0  # times the series' median absolute deviation


def _mean(gray: np.ndarray, obs: Observation, region: tuple[float, float, float, float]) -> float | None:
    """Mean of a frame region (left, top, right, bottom) in the observation's gray crop."""
    x0, y0, scale = obs.crop_origin
    left, top = int((region[0] - x0) * scale), int((region[1] - y0) * scale)
    right, bottom = int(np.ceil((region[2] - x0) * scale)), int(np.ceil((region[3] - y0) * scale))
    height, width = gray.shape[:2]
    if left < 0 or top < 0 or right > width or bottom > height or right <= left or bottom <= top:
        return None
    return float(gray[top:bottom, left:right].mean())


def eye_series(observations: Sequence[Observation]) -> np.ndarray | None:
    """(N, 2): each eye patch's brightness minus the face's, per frame; None when a crop misses one."""
    from smartlock.camera.imaging import load_cv2

    cv2 = load_cv2()
    rows = []
    for obs in observations:
        if obs.crop is None:
            return None
        gray = obs.crop if obs.crop.ndim == 2 else cv2.cvtColor(obs.crop, cv2.COLOR_BGR2GRAY)
        marks = np.asarray(obs.landmarks, np.float64)
        half = 0.2 * float(np.linalg.norm(marks[1] - marks[0]))
        face = _mean(gray, obs, obs.box)
        eyes = [_mean(gray, obs, (x - half, y - half, x + half, y + half)) for x, y in marks[:2]]
        if face is None or eyes[0] is None or eyes[1] is None:
            return None
        rows.append([eyes[0] - face, eyes[1] - face])
    return np.asarray(rows)


def find_blink(series: np.ndarray, s: BlinkSettings) -> int | None:
    """The frame index where a blink starts, or None."""
    if len(series) < 5:
        return None
    baseline = np.stack([np.median(series[max(0, i - 6):i + 7], axis=0) for i in range(len(series))])
    residual = series - baseline
    mad = np.median(np.abs(residual - np.median(residual, axis=0)), axis=0)
    threshold = np.maximum(s.rise, s.noise_factor * 1.4826 * mad)
    up = (residual > threshold).all(axis=1)
    index = 1  # a run must start and end inside the window: lids closing and opening again
    while index < len(up):
        if not up[index]:
            index += 1
            continue
        end = index
        while end < len(up) and up[end]:
            end += 1
        if end < len(up) and end - index <= s.max_duration:
            return index
        index = end
    return None


def judge(observations: Sequence[Observation], settings: BlinkSettings | None = None) -> CueResult:
    s = settings or BlinkSettings()
    window = [obs for obs in with_landmarks(recent(observations, s.window)) if obs.crop is not None]
    if len(window) < s.min_frames:
        return abstain(NAME, f"{len(window)} frames, need {s.min_frames}")
    iod = float(np.median([np.linalg.norm(np.asarray(o.landmarks)[1] - np.asarray(o.landmarks)[0])
                           for o in window]))
    if iod < s.min_iod:
        return abstain(NAME, f"face too small: eyes {iod:.0f} px apart, need {s.min_iod:.0f}")
    series = eye_series(window)
    if series is None:
        return abstain(NAME, "eyes outside the crop")
    start = find_blink(series, s)
    if start is None:
        return abstain(NAME, f"no blink in {len(window)} frames")
    return CueResult(NAME, 0.5, "live", f"blink at frame {window[start].seq}")
