"""The OpenCV seam: the one place cv2 is imported, and the BGR JPEG codec the camera and the engine share.

Frames stay in OpenCV's BGR channel order from capture to JPEG; the recognizer's RGB helpers are in
``smartlock.recognition.images`` (``encode_jpeg_rgb``). cv2 is imported only when called.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from smartlock.errors import BadImageError, DependencyMissing

CV2_INSTALL = 'pip install "opencv-python-headless>=4.9,<5"'  # 5.x no longer ships the Haar cascades


def load_cv2() -> Any:
    """The cv2 module, or DependencyMissing naming the headless wheel to install."""
    try:
        import cv2
    except ImportError as err:
        raise DependencyMissing("opencv-python-headless", "Camera frames", CV2_INSTALL) from err
    return cv2


def encode_jpeg_bgr(image_bgr: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a BGR (OpenCV order) uint8 image; BadImageError when OpenCV cannot encode it."""
    cv2 = load_cv2()
    ok, buffer = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise BadImageError("OpenCV could not encode the frame as JPEG")
    return bytes(buffer.tobytes())


def decode_jpeg_bgr(data: bytes) -> np.ndarray:
    """BGR uint8 image from JPEG (or any format OpenCV reads); BadImageError if it is not one."""
    cv2 = load_cv2()
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise BadImageError("the camera sent a frame that is not a decodable image")
    return np.asarray(image)
