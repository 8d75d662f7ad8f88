"""Real media for the camera tests: videos written with cv2.VideoWriter, JPEG/PNG files, stream readers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np

from smartlock.camera.mjpeg import iter_multipart

# Distinct BGR colours, so a decoded frame tells which source image or video frame it came from.
PALETTE = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]


def write_video(
    path: Path, *, frames: int = 40, size: tuple[int, int] = (320, 240), fps: float = 20.0
) -> Path:
    """An mp4v video whose frame i is a solid PALETTE colour (i // 10) with its number drawn on it."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened(), "cv2.VideoWriter cannot write mp4v here"
    for i in range(frames):
        image = np.zeros((size[1], size[0], 3), np.uint8)
        image[:] = PALETTE[(i // 10) % len(PALETTE)]
        cv2.putText(image, str(i), (10, size[1] - 20), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 0, 0), 4)
        writer.write(image)
    writer.release()
    return path


def solid_image(color: tuple[int, int, int], size: tuple[int, int] = (160, 120)) -> np.ndarray:
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[:] = color
    return image


def jpeg_bytes(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buffer.tobytes()


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a decodable JPEG"
    return image


def nearest_color(image: np.ndarray) -> int:
    """Index in PALETTE of the colour closest to the image's median pixel (the drawn digits are ignored)."""
    median = np.median(image.reshape(-1, 3), axis=0)
    return int(np.argmin([np.abs(median - np.array(c)).sum() for c in PALETTE]))


def stream_parts(
    client: httpx.Client, url: str, count: int, timeout: float = 30.0
) -> list[tuple[dict, bytes]]:
    """Read ``count`` parts of an MJPEG stream with our own parser (bounded by ``timeout``)."""
    parts: list[tuple[dict, bytes]] = []
    deadline = time.monotonic() + timeout
    with client.stream("GET", url, timeout=10.0) as response:
        assert response.status_code == 200, response.read()
        for headers, body in iter_multipart(_until(response.iter_raw(), deadline), "FRAME"):
            parts.append((headers, body))
            if len(parts) >= count:
                break
    return parts


def _until(chunks: Iterator[bytes], deadline: float) -> Iterator[bytes]:
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise TimeoutError("stream did not deliver in time")
        yield chunk
