"""The engine's few OpenCV operations: resize, mirror, the Haar cascade's path, BGR JPEG (camera seam)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smartlock.camera.imaging import decode_jpeg_bgr, encode_jpeg_bgr, load_cv2

# The seed resizes every frame to 640x360 before recognition; we fit inside that box instead, so a
# 4:3 camera is not squashed (a 16:9 one gets exactly the seed's 640x360).
ANALYSIS_SIZE = (640, 360)
HAAR_DEFAULT_NAME = "haarcascade_frontalface_default.xml"

__all__ = [
    "ANALYSIS_SIZE",
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
