"""The interface every recognition backend implements, and the registry that picks one by name."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from smartlock.errors import ConfigError


@dataclass(frozen=True)
class DetectedFace:
    """One face found in an image, in the image's pixel coordinates."""

    box: tuple[float, float, float, float]  # left, top, right, bottom
    landmarks: np.ndarray  # (5, 2): left eye, right eye, nose, left mouth corner, right mouth corner
    score: float  # detector confidence in [0, 1]
    embedding: np.ndarray  # (embedding_size,) float32, L2-normalised

    @property
    def area(self) -> float:
        left, top, right, bottom = self.box
        return max(0.0, right - left) * max(0.0, bottom - top)


def as_box(values: Iterable[float]) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) as plain floats from any four numbers (a numpy row, say)."""
    left, top, right, bottom = (float(v) for v in values)
    return left, top, right, bottom


class Backend(ABC):
    """Detect -> align -> embed. Implementations load their ML libraries lazily, in ``__init__``."""

    name: str = ""
    embedding_size: int = 0

    @abstractmethod
    def model_hashes(self) -> dict[str, str]:
        """sha256 of each weights file in use, keyed by file name; recorded in every gallery."""

    @abstractmethod
    def detect_and_embed(self, image: np.ndarray) -> list[DetectedFace]:
        """All faces in an RGB uint8 image (H, W, 3), largest first."""

    @abstractmethod
    def similarity(self, probes: np.ndarray, gallery: np.ndarray) -> np.ndarray:
        """Pairwise similarity (higher = more alike) between (P, D) probes and (G, D) gallery rows."""


# name -> "module:ClassName"; modules are imported only when that backend is asked for.
BACKENDS: dict[str, str] = {
    "arcface": "smartlock.recognition.backends.arcface:ArcFaceBackend",
    "dlib": "smartlock.recognition.backends.dlib:DlibBackend",
}
DEFAULT_BACKEND = "arcface"


def get_backend(name: str = DEFAULT_BACKEND, **options: object) -> Backend:
    """Instantiate the backend registered under ``name``; unknown names list the known ones."""
    try:
        target = BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(f"unknown recognition backend {name!r}; known: {known}") from None
    module_name, class_name = target.split(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class(**options)
