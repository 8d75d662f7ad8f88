"""Synthetic tracks whose answer is known: landmarks of a 3D head or a plane under a pinhole camera, and
frames drawn with OpenCV (textured faces, bezels, static and moving scenes)."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from smartlock.engine.tracks import Detection, Observation, face_crop

FPS = 24.0
FRAME = (640, 360)
FOCAL = 615.0
# eye centres, nose tip, mouth corners of an average head (mm; x right, y up, z toward the camera)
HEAD = np.array([[-31.5, 40.5, -32.0], [31.5, 40.5, -32.0], [0.0, 2.0, 0.0], [-25.0, -32.0, -30.0],
                 [25.0, -32.0, -30.0]])
PLANE = HEAD * np.array([1.0, 1.0, 0.0])  # the same face printed on a card


def rotation(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def project(points_mm: np.ndarray, distance_m: float, yaw: float, pitch: float, roll: float = 0.0,
            offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Image positions (N, 2) of model points on a face ``distance_m`` in front of the camera."""
    world = points_mm @ rotation(yaw, pitch, roll).T / 1000.0 * np.array([1.0, -1.0, -1.0])
    world = world + np.array([offset[0], offset[1], distance_m])
    return np.stack([FOCAL * world[:, 0] / world[:, 2] + FRAME[0] / 2,
                     FOCAL * world[:, 1] / world[:, 2] + FRAME[1] / 2], axis=1)


def landmark_track(points_mm: np.ndarray, poses: list[tuple[float, float, float, float]],
                   noise: float = 0.3, seed: int = 0) -> list[Observation]:
    """Observations (no crops) of ``points_mm`` seen at poses (distance, yaw, pitch, roll), with landmark
    noise of ``noise`` pixels."""
    rng = np.random.default_rng(seed)
    track = []
    for index, (distance, yaw, pitch, roll) in enumerate(poses):
        marks = project(points_mm, distance, yaw, pitch, roll) + rng.normal(0, noise, (5, 2))
        iod = float(np.linalg.norm(marks[1] - marks[0]))
        centre = marks.mean(axis=0)
        box = (centre[0] - 1.2 * iod, centre[1] - 1.4 * iod, centre[0] + 1.2 * iod, centre[1] + 1.3 * iod)
        track.append(Observation(t=index / FPS, seq=index,
                                 detection=Detection(box, 0.9, marks.astype(np.float32)),
                                 frame_size=FRAME))
    return track


def swing(n: int, amplitude: float, period: float = 1.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * np.arange(n) / FPS / period)


def texture(seed: int, size: tuple[int, int] = FRAME, blur: float = 4.0) -> np.ndarray:
    """A smooth random colour texture (BGR uint8)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(128, 60, (size[1], size[0], 3)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), blur).clip(0, 255).astype(np.uint8)


def face_frames(n: int, draw: Callable[[np.ndarray, int], tuple[float, float, float, float]],
                background: np.ndarray, noise: float = 2.0, seed: int = 0,
                context: float | None = None) -> list[Observation]:
    """Frames drawn by ``draw(frame, index) -> face box`` over ``background``, with sensor noise; the
    observations carry crops as the tracker makes them (``context``: another crop context than the
    tracker's), and landmarks placed in the box."""
    rng = np.random.default_rng(seed)
    track = []
    for index in range(n):
        frame = background.copy()
        box = draw(frame, index)
        cropped = face_crop(frame, box) if context is None else face_crop(frame, box, context)
        assert cropped is not None
        clean, origin = cropped
        # sensor noise on the crop only: the cues never see the rest of the frame
        crop = (clean + rng.normal(0, noise, clean.shape)).clip(0, 255).astype(np.uint8)
        w, h = box[2] - box[0], box[3] - box[1]
        layout = np.array([[0.3, 0.38], [0.7, 0.38], [0.5, 0.58], [0.35, 0.78], [0.65, 0.78]])
        marks = layout * [w, h] + box[:2]
        track.append(Observation(t=index / FPS, seq=index,
                                 detection=Detection(box, 0.9, marks.astype(np.float32)),
                                 frame_size=FRAME, crop=crop, crop_origin=origin))
    return track


def paint_face(frame: np.ndarray, face: np.ndarray, x: float, y: float) -> tuple[float, float, float, float]:
    """Paste an elliptical textured face with dark eyes at (x, y) (top-left); returns its box."""
    h, w = face.shape[:2]
    xi, yi = round(x), round(y)
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (w // 2 - 2, h // 2 - 2), 0, 0, 360, 255, -1)
    region = frame[yi:yi + h, xi:xi + w]
    region[mask > 0] = face[mask > 0]
    return (float(xi), float(yi), float(xi + w), float(yi + h))


def head_depth(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Depth (mm, toward the camera) of a head-like surface over the face: a rounded dome (cheeks and jaw
    ~50-90 mm behind the centre) with a nose 25 mm proud of it."""
    dome = 90.0 * (np.sqrt(np.clip(1 - (x / 80.0) ** 2 - (y / 105.0) ** 2, 0.0, 1.0)) - 1.0)
    nose = 25.0 * np.exp(-(x**2 + (y + 5.0) ** 2) / (2 * 12.0**2))
    return dome + nose


def flat_depth(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.zeros_like(x)


FACE_POINTS = np.array([[-31.5, 40.5], [31.5, 40.5], [0.0, 2.0], [-25.0, -32.0], [25.0, -32.0]])


def surface_frames(depth: Callable[[np.ndarray, np.ndarray], np.ndarray], skin: np.ndarray,
                   poses: list[tuple[float, float, float, float]], background: np.ndarray,
                   noise: float = 2.0, seed: int = 0, grid: tuple[int, int] = (14, 18)) -> list[Observation]:
    """A textured surface (``skin`` stretched over 140 x 180 mm, ``depth(x, y)`` in mm) seen under the
    pinhole camera at each pose (distance m, yaw, pitch, roll): drawn triangle by triangle, far ones first,
    with sensor noise; observations with crops as the tracker makes them and the five face points
    projected from the surface as landmarks."""
    rng = np.random.default_rng(seed)
    h, w = skin.shape[:2]
    xs, ys = np.linspace(-70, 70, grid[0] + 1), np.linspace(90, -90, grid[1] + 1)
    gx, gy = np.meshgrid(xs, ys)
    model = np.stack([gx, gy, depth(gx, gy)], axis=-1).reshape(-1, 3)
    tex = np.stack([(gx + 70) / 140 * (w - 1), (90 - gy) / 180 * (h - 1)], axis=-1).reshape(-1, 2)
    cols = grid[0] + 1
    triangles = []
    for row in range(grid[1]):
        for col in range(grid[0]):
            i = row * cols + col
            triangles += [(i, i + 1, i + cols), (i + 1, i + cols + 1, i + cols)]
    marks_mm = np.c_[FACE_POINTS, depth(FACE_POINTS[:, 0], FACE_POINTS[:, 1])]
    track = []
    for index, (distance, yaw, pitch, roll) in enumerate(poses):
        pixels = project(model, distance, yaw, pitch, roll)
        nearness = (model @ rotation(yaw, pitch, roll).T)[:, 2]  # toward the camera: drawn last
        frame = background.copy()
        for tri in sorted(triangles, key=lambda t: float(nearness[list(t)].mean())):
            _draw_triangle(frame, skin, tex[list(tri)], pixels[list(tri)])
        marks = project(marks_mm, distance, yaw, pitch, roll)
        iod = float(np.linalg.norm(marks[1] - marks[0]))
        centre = marks.mean(axis=0)
        box = (centre[0] - 1.2 * iod, centre[1] - 1.4 * iod, centre[0] + 1.2 * iod, centre[1] + 1.3 * iod)
        cropped = face_crop(frame, box)
        assert cropped is not None
        clean, origin = cropped
        crop = (clean + rng.normal(0, noise, clean.shape)).clip(0, 255).astype(np.uint8)
        track.append(Observation(t=index / FPS, seq=index,
                                 detection=Detection(box, 0.9, marks.astype(np.float32)),
                                 frame_size=FRAME, crop=crop, crop_origin=origin))
    return track


def _draw_triangle(frame: np.ndarray, skin: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
    x, y, bw, bh = cv2.boundingRect(dst.astype(np.float32))
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + bw + 1, frame.shape[1]), min(y + bh + 1, frame.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    matrix = cv2.getAffineTransform(src.astype(np.float32), (dst - [x0, y0]).astype(np.float32))
    patch = cv2.warpAffine(skin, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillConvexPoly(mask, np.round((dst - [x0, y0]) * 16).astype(np.int32), 255, cv2.LINE_AA, 4)
    region = frame[y0:y1, x0:x1]
    region[mask > 0] = patch[mask > 0]
