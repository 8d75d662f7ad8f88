"""The OpenCV seam: the one place cv2 is imported, and the BGR JPEG codec the camera and the engine share.

Frames stay in OpenCV's BGR channel order from capture to JPEG; the recognizer's RGB helpers are in
``smartlock.recognition.images`` (``encode_jpeg_rgb``). cv2 is imported only when called.

``decode_camera_jpeg`` is the strict decoder for frames read from a camera stream: it refuses what is
not a whole JPEG within the size limits (by its header, before decoding) and can decode at 1/2, 1/4 or
1/8 scale when only a smaller analysis size is needed (libjpeg scales in the DCT, so that is cheaper).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from smartlock.camera.mjpeg import JPEG_EOI, JPEG_SOI, jpeg_size
from smartlock.errors import BadImageError, DependencyMissing

CV2_INSTALL = 'pip install "opencv-python-headless>=4.9,<5"'  # 5.x no longer ships the Haar cascades
MAX_FRAME_SIDE = 4096  # pixels per side of a camera frame; 4K UHD (3840x2160) passes, 8K does not
MAX_FRAME_PIXELS = 16 * 2**20  # 16 Mpx
REDUCTIONS = (8, 4, 2)

# why a camera frame was refused (``FrameRefused.reason``)
EMPTY = "empty"
NOT_JPEG = "not-jpeg"
OVERSIZED = "oversized"
TRUNCATED = "truncated"
UNDECODABLE = "undecodable"


class FrameRefused(BadImageError):
    """A camera frame that is not a whole JPEG within the limits; ``reason`` is one of the names above."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


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


def reduction(size: tuple[int, int], reduce_to: tuple[int, int] | None) -> int:
    """The largest of 8, 4, 2 by which ``size`` (width, height) is at least that many times ``reduce_to``
    in both dimensions, so the reduced image is still no smaller than ``reduce_to``; 1 when none is."""
    if reduce_to is None:
        return 1
    width, height = size
    return next((f for f in REDUCTIONS if width >= f * reduce_to[0] and height >= f * reduce_to[1]), 1)


def _imread_flag(cv2: Any, factor: int) -> int:
    return {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}[factor]


def decode_jpeg_bgr(data: bytes, reduce_to: tuple[int, int] | None = None) -> np.ndarray:
    """BGR uint8 image from JPEG (or any format OpenCV reads); BadImageError if it is not one.

    With ``reduce_to`` (width, height), a JPEG at least 2, 4 or 8 times that size in both dimensions
    (by its header) is decoded at 1/2, 1/4 or 1/8 scale; without it (the camera's case), at full size.
    """
    cv2 = load_cv2()
    size = jpeg_size(data) if reduce_to is not None else None
    flag = _imread_flag(cv2, reduction(size, reduce_to) if size else 1)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag) if data else None
    if image is None:
        raise BadImageError("the camera sent a frame that is not a decodable image")
    return np.asarray(image)


def decode_camera_jpeg(
    data: bytes,
    reduce_to: tuple[int, int] | None = None,
    max_side: int = MAX_FRAME_SIDE,
    max_pixels: int = MAX_FRAME_PIXELS,
) -> np.ndarray:
    """A camera frame, only if it is a whole JPEG within the limits; else ``FrameRefused`` with a reason.

    Checked before decoding: bytes present, a JPEG start, a frame header (SOF) whose size is at most
    ``max_side`` per side and ``max_pixels`` in all (an 8K frame is refused unread), and the end-of-image
    marker (a JPEG cut short would decode with its missing rows filled in grey). After: the decoded
    size is the header's (reduced by ``reduce_to`` as in ``decode_jpeg_bgr``).
    """
    if not data:
        raise FrameRefused(EMPTY, "the camera sent an empty frame")
    if not data.startswith(JPEG_SOI):
        raise FrameRefused(NOT_JPEG, f"the camera sent a part that is not a JPEG ({len(data)} bytes)")
    size = jpeg_size(data)
    if size is None or 0 in size:
        raise FrameRefused(NOT_JPEG, f"the camera sent a JPEG without a frame size ({len(data)} bytes)")
    width, height = size
    if max(width, height) > max_side or width * height > max_pixels:
        raise FrameRefused(OVERSIZED, f"the camera sent a {width}x{height} frame (at most {max_side} px a "
                                      f"side and {max_pixels / 2**20:g} Mpx); not decoded")
    if not data.rstrip(b"\r\n\t \x00").endswith(JPEG_EOI):
        raise FrameRefused(TRUNCATED, f"the camera sent a {width}x{height} JPEG cut short "
                                      f"({len(data)} bytes)")
    cv2 = load_cv2()
    factor = reduction(size, reduce_to)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _imread_flag(cv2, factor))
    expected = (-(-height // factor), -(-width // factor))
    if image is None or image.ndim != 3 or image.shape[:2] not in (expected, expected[::-1]):
        raise FrameRefused(UNDECODABLE, f"the camera sent a {width}x{height} JPEG that does not decode")
    return np.asarray(image)
