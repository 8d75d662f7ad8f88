"""Geometry shared by the backends: 5-point alignment to the ArcFace template, NMS, padded retries."""

from __future__ import annotations

import numpy as np

# Where the eyes, nose tip and mouth corners sit in a 112x112 ArcFace input (InsightFace's standard
# template, the one w600k_mbf was trained with).
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 matrix of the rotation + uniform scale + translation that best maps ``source`` points
    onto ``target`` points in the least-squares sense (Umeyama, 1991), without reflection."""
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rotation = u @ sign @ vt
    src_var = (src_c**2).sum() / len(src)
    scale = float(np.trace(np.diag(singular) @ sign) / src_var) if src_var > 0 else 1.0
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp the face with these 5 landmarks to a ``size`` x ``size`` crop in the ArcFace template."""
    import cv2

    template = ARCFACE_TEMPLATE * (size / 112.0)
    matrix = similarity_transform(np.asarray(landmarks, dtype=np.float64), template)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Indices of the boxes (N, 4: left, top, right, bottom) kept by greedy non-maximum suppression."""
    order = np.argsort(-scores, kind="stable")
    left, top, right, bottom = boxes.T
    areas = np.maximum(0.0, right - left) * np.maximum(0.0, bottom - top)
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        width = np.maximum(0.0, np.minimum(right[best], right[rest]) - np.maximum(left[best], left[rest]))
        height = np.maximum(0.0, np.minimum(bottom[best], bottom[rest]) - np.maximum(top[best], top[rest]))
        overlap = width * height
        iou = overlap / np.maximum(areas[best] + areas[rest] - overlap, 1e-9)
        order = rest[iou <= iou_threshold]
    return keep


def pad_for_retry(image: np.ndarray, factor: float = 2.0,
                  max_side: int | None = None) -> tuple[np.ndarray, int, int, float]:
    """The image centred on a gray canvas ``factor`` times its larger side, the offset (x, y) of the
    image on it and the scale applied first: canvas = image * scale + offset.

    Detectors miss a face that fills the whole frame (no margin, larger than their biggest anchor);
    seen on a padded canvas it becomes an ordinary, smaller face. With ``max_side`` the image is shrunk
    first so that the canvas stays within it: a detector that resizes its input to that size anyway
    loses nothing, and a long thin image cannot make a canvas of its length squared.
    """
    import cv2

    height, width = image.shape[:2]
    side = max(1, round(max(height, width) * factor))
    scale = 1.0
    if max_side is not None and side > max_side:
        scale = max_side / side
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        height, width = image.shape[:2]
        side = max(max_side, height, width)
    canvas = np.full((side, side, 3), 127, dtype=np.uint8)
    x, y = (side - width) // 2, (side - height) // 2
    canvas[y : y + height, x : x + width] = image
    return canvas, x, y, scale
