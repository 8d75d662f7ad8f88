"""A generic 3D face (68 landmarks plus forehead and sides, in mm) and a perspective renderer for the bench.

The mean shape is written out here from average adult anthropometry (inter-ocular distance 63 mm, nose tip
~30 mm in front of the eye corners, mouth corners ~30 mm behind the nose tip, jaw angle ~95 mm behind it);
it follows the iBUG 68-point order. Coordinates: x to the image's right for a frontal view, y up, z toward
the viewer, nose tip at the origin. A photo is textured onto it through an affine map fitted on five points
(eye centres, nose tip, mouth corners) to the landmarks the detector found on the photo, and the mesh is
rendered triangle by triangle (painter's order, back faces culled) under a pinhole camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_HALF_JAW = [(-72, 38, -95), (-71, 18, -92), (-68, -2, -88), (-63, -22, -80), (-56, -40, -68),
             (-46, -55, -52), (-34, -67, -36), (-19, -76, -22)]
_LEFT_BROW = [(-58, 50, -58), (-48, 57, -42), (-36, 60, -32), (-24, 59, -26), (-12, 55, -22)]
_NOSE_BRIDGE = [(0, 42, -24), (0, 29, -16), (0, 15, -8), (0, 2, 0)]
_NOSE_BOTTOM = [(-15, -8, -18), (-8, -11, -11), (0, -13, -8), (8, -11, -11), (15, -8, -18)]
_LEFT_EYE = [(-45, 40, -42), (-36, 45, -33), (-26, 45, -31), (-17, 40, -32), (-26, 36, -31), (-36, 36, -33)]
_RIGHT_EYE = [(17, 40, -32), (26, 45, -31), (36, 45, -33), (45, 40, -42), (36, 36, -33), (26, 36, -31)]
_MOUTH_OUTER = [(-25, -32, -30), (-16, -27, -20), (-6, -24, -15), (0, -25, -14), (6, -24, -15),
                (16, -27, -20), (25, -32, -30), (16, -39, -22), (7, -42, -18), (0, -43, -17),
                (-7, -42, -18), (-16, -39, -22)]
_MOUTH_INNER = [(-20, -32, -26), (-7, -30, -17), (0, -30, -16), (7, -30, -17), (20, -32, -26),
                (7, -34, -17), (0, -34, -16), (-7, -34, -17)]
# beyond the 68 points: forehead rows and the sides of the head, so the render has a head's outline
_EXTRA = [(-60, 75, -70), (-32, 82, -42), (0, 84, -36), (32, 82, -42), (60, 75, -70),
          (-50, 100, -85), (-25, 106, -60), (0, 108, -55), (25, 106, -60), (50, 100, -85),
          (-82, 60, -120), (-84, 20, -125), (-78, -20, -115), (82, 60, -120), (84, 20, -125),
          (78, -20, -115), (-68, 88, -105), (68, 88, -105)]


def _mirror(points: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    return [(-x, y, z) for x, y, z in reversed(points)]


def mean_shape() -> np.ndarray:
    """(86, 3) float32 mm: the 68 iBUG landmarks, then forehead and side points."""
    jaw = [*_HALF_JAW, (0, -80, -16), *_mirror(_HALF_JAW)]
    brows = [*_LEFT_BROW, *_mirror(_LEFT_BROW)]
    points = [*jaw, *brows, *_NOSE_BRIDGE, *_NOSE_BOTTOM, *_LEFT_EYE, *_RIGHT_EYE, *_MOUTH_OUTER,
              *_MOUTH_INNER, *_EXTRA]
    return np.asarray(points, dtype=np.float32)


SHAPE = mean_shape()
EYE_LEFT, EYE_RIGHT = list(range(36, 42)), list(range(42, 48))


def five_points(shape: np.ndarray = SHAPE) -> np.ndarray:
    """The detector's five landmarks on the 3D shape: eye centres, nose tip, mouth corners (5, 3)."""
    return np.stack([shape[EYE_LEFT].mean(axis=0), shape[EYE_RIGHT].mean(axis=0), shape[30], shape[48],
                     shape[54]]).astype(np.float32)


def _triangulate(points2d: np.ndarray) -> np.ndarray:
    """Delaunay triangles of the frontal projection (indices into the points)."""
    low, high = points2d.min(axis=0) - 10, points2d.max(axis=0) + 10
    subdiv = cv2.Subdiv2D((int(low[0]), int(low[1]), int(high[0] - low[0]) + 1, int(high[1] - low[1]) + 1))
    for x, y in points2d:
        subdiv.insert((float(x), float(y)))
    triangles = []
    for tri in subdiv.getTriangleList().reshape(-1, 3, 2):
        index = [int(np.argmin(np.linalg.norm(points2d - vertex, axis=1))) for vertex in tri]
        if len(set(index)) == 3 and all(np.linalg.norm(points2d[i] - v) < 1e-3 for i, v in zip(index, tri,
                                                                                                   strict=True)):
            triangles.append(index)
    return np.asarray(triangles, dtype=np.int32)


TRIANGLES = _triangulate(np.stack([SHAPE[:, 0], -SHAPE[:, 1]], axis=1))


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation (degrees) of the head in its own frame: yaw about y (up), pitch about x, roll about z."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at the world origin, x right, y down, z forward (OpenCV), tilted down by ``tilt``."""

    width: int = 640
    height: int = 360
    hfov: float = 70.0
    tilt: float = 10.0  # degrees the camera looks down

    @property
    def focal(self) -> float:
        return self.width / 2 / np.tan(np.radians(self.hfov) / 2)

    def project(self, world: np.ndarray, supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) metres (y down) → pixels (N, 2) and depth (N,)."""
        t = np.radians(self.tilt)
        # the camera's axes in world coordinates: looking down by tilt
        r = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
        cam = world @ r.T
        f = self.focal * supersample
        uv = np.stack([f * cam[:, 0] / cam[:, 2] + self.width * supersample / 2,
                       f * cam[:, 1] / cam[:, 2] + self.height * supersample / 2], axis=1)
        return uv.astype(np.float32), cam[:, 2]


def head_to_world(points_mm: np.ndarray, position: np.ndarray, yaw: float, pitch: float,
                  roll: float) -> np.ndarray:
    """Model points (mm, y up, z toward the viewer) of a head at ``position`` (metres, world, y down)
    facing the camera's side (-z), turned by yaw/pitch/roll."""
    rotated = points_mm @ rotation(yaw, pitch, roll).T / 1000.0
    flip = np.array([1.0, -1.0, -1.0])
    return rotated * flip + position


def texture_map(photo_landmarks: np.ndarray, shape: np.ndarray = SHAPE) -> np.ndarray:
    """Texture coordinates (N, 2) of every shape point in the photo: an affine map of the frontal view
    fitted on the five landmarks the detector found on the photo."""
    model = five_points(shape)[:, :2] * np.array([1.0, -1.0])
    design = np.hstack([model, np.ones((5, 1))])
    affine, *_ = np.linalg.lstsq(design, photo_landmarks.astype(np.float64), rcond=None)
    frontal = shape[:, :2] * np.array([1.0, -1.0])
    return (np.hstack([frontal, np.ones((len(shape), 1))]) @ affine).astype(np.float32)


def warp_triangle(dest: np.ndarray, texture: np.ndarray, src: np.ndarray, dst: np.ndarray,
                  shade: float = 1.0) -> None:
    """Paint one textured triangle (src in texture pixels, dst in dest pixels) into ``dest``."""
    x, y, w, h = cv2.boundingRect(dst.astype(np.float32))
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, dest.shape[1]), min(y + h, dest.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    local = dst - np.array([x0, y0], dtype=np.float32)
    matrix = cv2.getAffineTransform(src.astype(np.float32), local.astype(np.float32))
    patch = cv2.warpAffine(texture, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    cv2.fillConvexPoly(mask, np.round(local * 16).astype(np.int32), 255, lineType=cv2.LINE_AA, shift=4)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    region = dest[y0:y1, x0:x1].astype(np.float32)
    dest[y0:y1, x0:x1] = (region * (1 - alpha) + patch.astype(np.float32) * shade * alpha).clip(0, 255)


def render_head(canvas: np.ndarray, texture: np.ndarray, uv: np.ndarray, camera: Camera,
                position: np.ndarray, yaw: float, pitch: float, roll: float, supersample: int = 2,
                light: np.ndarray | None = None) -> None:
    """Render the textured head into ``canvas`` (supersampled size) in place."""
    world = head_to_world(SHAPE, position, yaw, pitch, roll)
    pixels, depth = camera.project(world, supersample)
    light = np.array([0.3, -0.4, -0.85]) if light is None else light
    light = light / np.linalg.norm(light)
    tris = TRIANGLES
    a, b, c = pixels[tris[:, 0]], pixels[tris[:, 1]], pixels[tris[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    w3 = world[tris]
    normals = np.cross(w3[:, 1] - w3[:, 0], w3[:, 2] - w3[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    # the frontal triangulation's winding: keep the side facing the camera
    sign = np.sign(np.median(area))
    order = np.argsort(-depth[tris].mean(axis=1))
    for index in order:
        if area[index] * sign <= 0:
            continue
        normal = normals[index]
        facing = abs(float(normal @ light))
        shade = 0.55 + 0.5 * facing
        warp_triangle(canvas, texture, uv[tris[index]], pixels[tris[index]], shade)


def project_landmarks(camera: Camera, position: np.ndarray, yaw: float, pitch: float,
                      roll: float) -> np.ndarray:
    """The five landmarks' true image positions (5, 2) for tests that skip the detector."""
    world = head_to_world(five_points(), position, yaw, pitch, roll)
    pixels, _ = camera.project(world)
    return pixels
