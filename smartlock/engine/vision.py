"""The engine's few OpenCV operations (Haar pre-filter, resize; BGR JPEG from the camera's cv2 seam)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from smartlock.camera.imaging import decode_jpeg_bgr, encode_jpeg_bgr, load_cv2
from smartlock.errors import ConfigError

# The seed resizes every frame to 640x360 before recognition; we fit inside that box instead, so a
# 4:3 camera is not squashed (a 16:9 one gets exactly the seed's 640x360).
ANALYSIS_SIZE = (640, 360)
HAAR_DEFAULT_NAME = "haarcascade_frontalface_default.xml"

__all__ = [
    "ANALYSIS_SIZE",
    "HaarFaceDetector",
    "bgr_to_rgb",
    "decode_jpeg_bgr",
    "default_haar_path",
    "encode_jpeg_bgr",
    "fit_within",
    "load_cv2",
    "prepare",
]


def default_haar_path() -> Path:
    """The frontal-face cascade that opencv-python-headless 4.x ships."""
    return Path(load_cv2().data.haarcascades) / HAAR_DEFAULT_NAME


def fit_within(image: np.ndarray, size: tuple[int, int] = ANALYSIS_SIZE) -> np.ndarray:
    """Downscale so the image fits in ``size`` (width, height), keeping the aspect ratio; never upscale."""
    height, width = image.shape[:2]
    scale = min(size[0] / width, size[1] / height)
    if scale >= 1.0:
        return image
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    cv2 = load_cv2()
    return np.asarray(cv2.resize(image, new_size, interpolation=cv2.INTER_AREA))


def prepare(image: np.ndarray, mirror: bool, size: tuple[int, int] = ANALYSIS_SIZE) -> np.ndarray:
    """A camera frame as the engine analyses it: mirrored like the seed's (selfie view), then fitted."""
    if mirror:
        image = image[:, ::-1]
    return np.ascontiguousarray(fit_within(image, size))


def bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[:, :, ::-1])


class HaarFaceDetector:
    """The seed's cheap "is there a face at all?" test, run before paying for recognition."""

    def __init__(self, path: Path | str | None = None, scale_factor: float = 1.3,
                 min_neighbors: int = 5) -> None:
        cv2 = load_cv2()
        self.path = Path(path) if path else default_haar_path()
        if not self.path.is_file():
            raise ConfigError(f"Haar cascade file not found: {self.path}")
        self._classifier = cv2.CascadeClassifier(str(self.path))
        if self._classifier.empty():
            raise ConfigError(f"{self.path} is not a Haar cascade OpenCV can load")
        self._scale_factor = scale_factor
        self._min_neighbors = min_neighbors
        self._lock = threading.Lock()  # one CascadeClassifier is not safe to share between threads

    def __call__(self, image_bgr: np.ndarray) -> bool:
        cv2 = load_cv2()
        gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
        with self._lock:
            faces = self._classifier.detectMultiScale(
                gray, scaleFactor=self._scale_factor, minNeighbors=self._min_neighbors
            )
        return len(faces) > 0
