"""A deterministic fake backend for unit tests: the image's pixels say which faces it shows.

Pixel (0, k) for k = 0, 1, ... encodes face k: red = identity (0 ends the list), green = variation.
Identity i has a fixed random unit direction; variation adds a small, fixed perturbation, so photos
of one identity are similar and different identities are nearly orthogonal.
"""

from __future__ import annotations

import io
import threading

import numpy as np
from PIL import Image

from smartlock.recognition.backends.base import Backend, DetectedFace

SIZE = 32


def direction(identity: int, variation: int = 0, noise: float = 0.35) -> np.ndarray:
    base = np.random.default_rng(identity).normal(size=SIZE)
    base /= np.linalg.norm(base)
    if variation:
        jitter = np.random.default_rng(10_000 + 1000 * identity + variation).normal(size=SIZE)
        base = base + noise * jitter / np.linalg.norm(jitter)
    return (base / np.linalg.norm(base)).astype(np.float32)


def face_image(*faces: tuple[int, int], size: int = 64) -> np.ndarray:
    """An RGB image showing faces (identity, variation); identity 0 is not allowed."""
    image = np.full((size, size, 3), 200, dtype=np.uint8)
    image[0, :, 0] = 0
    for k, (identity, variation) in enumerate(faces):
        assert 0 < identity < 256
        image[0, k] = (identity, variation, 0)
    return image


def png(image: np.ndarray) -> bytes:
    """Lossless bytes of an image (the fake backend reads exact pixel values)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


class FakeBackend(Backend):
    name = "fake"
    embedding_size = SIZE

    def __init__(self, hashes: dict[str, str] | None = None) -> None:
        self._hashes = hashes or {"fake.onnx": "0" * 64}
        self.calls = 0
        self._lock = threading.Lock()

    def model_hashes(self) -> dict[str, str]:
        return dict(self._hashes)

    def detect_and_embed(self, image: np.ndarray) -> list[DetectedFace]:
        with self._lock:
            self.calls += 1
        faces = []
        for k in range(image.shape[1]):
            identity, variation = int(image[0, k, 0]), int(image[0, k, 1])
            if identity == 0:
                break
            size = 40.0 - 5 * k  # earlier faces are larger
            left = 50.0 * k
            faces.append(DetectedFace(
                box=(left, 10.0, left + size, 10.0 + size),
                landmarks=np.zeros((5, 2), np.float32),
                score=0.9,
                embedding=direction(identity, variation),
            ))
        return faces

    def similarity(self, probes: np.ndarray, gallery: np.ndarray) -> np.ndarray:
        return np.asarray(probes, np.float32) @ np.asarray(gallery, np.float32).T
