"""The permissive backend: dlib's HOG detector, 5-point shape predictor and 128-d ResNet descriptor.

Needs ``dlib-bin`` (a prebuilt dlib, no compiler) and ``face-recognition-models`` (dlib's
public-domain weights). Weaker and slower than arcface, but free of licence restrictions.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from smartlock.errors import ConfigError, DependencyMissing
from smartlock.recognition.backends.base import Backend, DetectedFace, as_box
from smartlock.recognition.backends.geometry import pad_for_retry
from smartlock.recognition.backends.weights import package_dir, read_verified

WEIGHTS_PACKAGE = "face_recognition_models"
WEIGHTS_INSTALL = "pip install face-recognition-models"
PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
# sha256 of the files in face-recognition-models 0.3.0.
KNOWN_SHA256 = {
    PREDICTOR_FILE: "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    DESCRIPTOR_FILE: "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
}
# dlib's HOG window is 80x80: upsampling once finds faces down to about 40 px.
AUTO_UPSAMPLE_MAX_SIDE = 1024
MAX_SIDE = 2048


def _dlib():
    try:
        import dlib
    except ImportError:
        raise DependencyMissing("dlib-bin", "the dlib backend", "pip install 'smartlock[dlib]'") from None
    return dlib


class DlibBackend(Backend):
    """HOG + shape predictor + ResNet descriptor. dlib's objects are not thread-safe: calls are serialised."""

    name = "dlib"
    embedding_size = 128
    version = 2  # 2: descriptors L2-normalised (version 1 kept dlib's raw lengths)

    def __init__(self, *, upsample: int | None = None, detection_threshold: float = 0.0,
                 min_face: float = 16.0) -> None:
        if upsample is not None and not 0 <= upsample <= 3:
            raise ConfigError(f"upsample must be 0-3 or None (automatic), got {upsample}")
        dlib = _dlib()
        folder = package_dir(WEIGHTS_PACKAGE, "the dlib backend's weights", WEIGHTS_INSTALL) / "models"
        self._hashes = {}
        loaded = {}
        for file_name in (PREDICTOR_FILE, DESCRIPTOR_FILE):
            # dlib loads from a path only: check the file, then load that path.
            _, digest = read_verified(folder / file_name, KNOWN_SHA256[file_name])
            self._hashes[file_name] = digest
            loaded[file_name] = folder / file_name
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(loaded[PREDICTOR_FILE]))
        self._descriptor = dlib.face_recognition_model_v1(str(loaded[DESCRIPTOR_FILE]))
        self._dlib = dlib
        self._lock = threading.Lock()
        self.upsample = upsample
        self.detection_threshold = detection_threshold
        self.min_face = min_face

    def model_hashes(self) -> dict[str, str]:
        return dict(self._hashes)

    def _upsample_for(self, image: np.ndarray) -> int:
        if self.upsample is not None:
            return self.upsample
        return 1 if max(image.shape[:2]) <= AUTO_UPSAMPLE_MAX_SIDE else 0

    def _detect_once(self, image: np.ndarray) -> list[tuple[Any, float]]:
        rects, scores, _ = self._detector.run(image, self._upsample_for(image), self.detection_threshold)
        found = []
        for rect, score in zip(rects, scores, strict=True):
            if min(rect.width(), rect.height()) >= self.min_face:
                found.append((rect, float(score)))
        return found

    def detect_and_embed(self, image: np.ndarray) -> list[DetectedFace]:
        import cv2

        array = np.asarray(image)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {array.dtype} {array.shape}")
        scale = 1.0
        work = np.ascontiguousarray(array)
        if max(work.shape[:2]) > MAX_SIDE:
            scale = MAX_SIDE / max(work.shape[:2])
            size = (max(1, round(work.shape[1] * scale)), max(1, round(work.shape[0] * scale)))
            work = cv2.resize(work, size, interpolation=cv2.INTER_AREA)
        dx = dy = 0
        with self._lock:
            found = self._detect_once(work)
            if not found:
                # A face filling the frame has no margin for the HOG window: retry on a padded canvas.
                work, dx, dy, retry_scale = pad_for_retry(work, max_side=MAX_SIDE)
                scale *= retry_scale
                found = self._detect_once(work)
            if not found:
                return []
            shapes = self._dlib.full_object_detections()
            for rect, _ in found:
                shapes.append(self._predictor(work, rect))
            descriptors = self._descriptor.compute_face_descriptor(work, shapes)
        faces = []
        offset = np.array([dx, dy], dtype=np.float32)
        for (rect, score), shape, descriptor in zip(found, shapes, descriptors, strict=True):
            points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            landmarks = (_five_points(points) - offset) / scale
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float32)
            box = (box - np.tile(offset, 2)) / scale
            height, width = array.shape[:2]
            box = np.clip(box, 0, [width, height, width, height])
            faces.append(
                DetectedFace(
                    box=as_box(box),
                    landmarks=landmarks,
                    score=float(1 / (1 + np.exp(-score))),  # HOG margin -> (0, 1)
                    embedding=_normalised(np.asarray(descriptor, dtype=np.float32)),
                )
            )
        faces.sort(key=lambda f: -f.area)
        return faces

    def similarity(self, probes: np.ndarray, gallery: np.ndarray) -> np.ndarray:
        """1 - Euclidean distance between L2-normalised descriptors (in [-1, 1]).

        dlib's descriptors vary in length (1.43 +- 0.08 on LFW) and the length carries no identity:
        on ../shared/faces normalising keeps 56% of genuine faces at a 0.1% stranger false-accept
        rate against 42% for raw distances (benchmarks/accuracy.py)."""
        probes = np.asarray(probes, np.float64)
        gallery = np.asarray(gallery, np.float64)
        squared = (probes**2).sum(1)[:, None] + (gallery**2).sum(1)[None, :] - 2 * probes @ gallery.T
        return 1.0 - np.sqrt(np.maximum(squared, 0.0))


def _normalised(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def _five_points(points: np.ndarray) -> np.ndarray:
    """dlib's 5 points (two corners of each eye, bottom of the nose) -> our 5 landmarks (eye centres,
    nose, mouth corners). dlib has no mouth points: they are placed where the ArcFace template puts
    them relative to the eyes and nose (display only; dlib aligns with its own 5 points)."""
    eyes = sorted([points[0:2].mean(axis=0), points[2:4].mean(axis=0)], key=lambda p: p[0])
    left_eye, right_eye = eyes
    nose = points[4]
    eye_mid = (left_eye + right_eye) / 2
    mouth_mid = nose + (nose - eye_mid)
    half_width = (right_eye - left_eye) * 0.415
    return np.array([left_eye, right_eye, nose, mouth_mid - half_width, mouth_mid + half_width], np.float32)

