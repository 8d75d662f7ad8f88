"""Screen and print texture: the pixel grid of a screen (moiré: sharp peaks in the face's spectrum) and
specular glare (a saturated white blob on the face, from a glossy print or a screen's glass).

Both are measured on the face box of a few recent crops at the crop's own resolution. The spectrum's axes
are ignored (JPEG's 8x8 blocks and the face's own horizontal and vertical edges put energy there). This cue
only ever says "attack" or abstains: a face without moiré or glare is not thereby live.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from smartlock.engine.liveness.base import CueResult, abstain, recent, spread_evenly
from smartlock.engine.tracks import Observation

NAME = "texture"


@dataclass(frozen=True)
class TextureSettings:
    window: float = 1.0
    samples: int = 3
    min_side: int = 48  # face box side in crop pixels
    moire_peak: float = 40.0  # strongest off-axis high-frequency peak / median of that band
    glare_fraction: float = 0.06  # the largest saturated blob, as a fraction of the face box
    saturation: int = 250


def face_region(obs: Observation) -> np.ndarray | None:
    """The face box of the crop (BGR, crop resolution)."""
    if obs.crop is None:
        return None
    x0, y0, scale = obs.crop_origin
    left, top, right, bottom = obs.box
    height, width = obs.crop.shape[:2]
    x_lo, t = max(0, int((left - x0) * scale)), max(0, int((top - y0) * scale))
    r, b = min(width, int((right - x0) * scale)), min(height, int((bottom - y0) * scale))
    if r - x_lo < 2 or b - t < 2:
        return None
    return obs.crop[t:b, x_lo:r]


def moire(region: np.ndarray) -> float:
    """The strongest off-axis peak of the upper half of the spectrum over the band's median."""
    gray = region.mean(axis=2) if region.ndim == 3 else region.astype(np.float64)
    gray = gray - gray.mean()
    h, w = gray.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(gray * window)))
    fy = (np.arange(h) - h // 2)[:, None] / h
    fx = (np.arange(w) - w // 2)[None, :] / w
    radius = np.hypot(fx, fy)
    band = (radius >= 0.15) & (radius <= 0.5) & (np.abs(fx) > 2.5 / w) & (np.abs(fy) > 2.5 / h)
    values = spectrum[band]
    if values.size < 16:
        return 0.0
    return float(values.max() / max(float(np.median(values)), 1e-6))


def glare(region: np.ndarray, saturation: int) -> float:
    """The largest connected saturated blob, as a fraction of the region."""
    from smartlock.camera.imaging import load_cv2

    cv2 = load_cv2()
    mask = (region.min(axis=2) >= saturation).astype(np.uint8) if region.ndim == 3 else \
        (region >= saturation).astype(np.uint8)
    if not mask.any():
        return 0.0
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    largest = int(stats[1:, cv2.CC_STAT_AREA].max()) if count > 1 else 0
    return largest / mask.size


def judge(observations: Sequence[Observation], settings: TextureSettings | None = None) -> CueResult:
    s = settings or TextureSettings()
    regions = []
    for obs in spread_evenly([o for o in recent(observations, s.window) if o.crop is not None], s.samples):
        region = face_region(obs)
        if region is not None and min(region.shape[:2]) >= s.min_side:
            regions.append(region)
    if not regions:
        return abstain(NAME, f"no face crop of {s.min_side}+ px")
    peak = float(np.median([moire(r) for r in regions]))
    blob = float(np.median([glare(r, s.saturation) for r in regions]))
    detail = f"moiré peak {peak:.1f}, glare {100 * blob:.1f}% of the face, {len(regions)} crops"
    if peak >= s.moire_peak:
        return CueResult(NAME, -1.0, "attack", f"screen grid: {detail}")
    if blob >= s.glare_fraction:
        return CueResult(NAME, -1.0, "attack", f"glare: {detail}")
    score = -0.5 * max(peak / s.moire_peak, blob / s.glare_fraction)
    return CueResult(NAME, float(max(score, -0.5)), "abstain", detail)
