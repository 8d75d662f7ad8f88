"""Sequences of 640x360 analysis frames for the liveness bench: genuine 3D heads and presentation attacks.

Every scene is drawn from a seed, so a sequence can be rebuilt exactly. Kinds:

- ``genuine-approach``: a textured 3D head walking toward a door camera mounted above face height;
- ``genuine-turn``: a head standing at the door, looking around (yaw and pitch);
- ``card-border`` / ``card-plain``: the photo printed (matte or glossy, with or without a white border) and
  moved by hand in 3D;
- ``photo-still``: the printed photo on a stand (nothing moves);
- ``screen``: a phone or tablet held by hand showing the photo (bezel, pixel grid, gamma, glare);
- ``screen-replay``: the same screens playing a video of a 3D head turning (a replay attack).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from benchmarks.liveness_bench import face3d

FPS = 24.0
SIZE = (640, 360)
SUPERSAMPLE = 2
CAMERA = face3d.Camera(width=SIZE[0], height=SIZE[1], hfov=55.0, tilt=15.0)
CAMERA_ABOVE = 0.2  # metres between the camera and the eyes' height

GENUINE = ("genuine-approach", "genuine-turn")
ATTACKS = ("card-border", "card-plain", "photo-still", "screen", "screen-replay")
KINDS = GENUINE + ATTACKS


@dataclass(frozen=True)
class Photo:
    """A face photo (BGR) with the five landmarks and the box the detector found on it."""

    image: np.ndarray
    landmarks: np.ndarray
    box: np.ndarray


def background(rng: np.random.Generator) -> np.ndarray:
    """A static hallway: a wall with texture, a door frame and a light switch (straight edges that do not
    move with a face)."""
    w, h = SIZE[0] * SUPERSAMPLE, SIZE[1] * SUPERSAMPLE
    base = rng.uniform(90, 200, 3)
    ramp = np.linspace(0.8, 1.1, w)[None, :, None]
    wall = (np.ones((h, w, 3)) * base * ramp).astype(np.float32)
    noise = cv2.GaussianBlur(rng.normal(0, 12, (h, w)).astype(np.float32), (0, 0), 3)
    wall += noise[..., None]
    x = int(rng.uniform(0.05, 0.35) * w) if rng.random() < 0.5 else int(rng.uniform(0.65, 0.95) * w)
    frame_color = rng.uniform(40, 230, 3)
    cv2.rectangle(wall, (x - 30, -10), (x + 30, h + 10), frame_color.tolist(), -1)
    cv2.line(wall, (x - 12, 0), (x - 12, h), (frame_color * 0.7).tolist(), 3)
    sx, sy = int(rng.uniform(0.1, 0.9) * w), int(rng.uniform(0.3, 0.7) * h)
    cv2.rectangle(wall, (sx, sy), (sx + 40, sy + 60), (235, 235, 235), -1)
    return wall.clip(0, 255).astype(np.uint8)


_NOISE_BANK: list[np.ndarray] = []


def _noise(rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Sensor noise for one frame: a random window of a larger pre-drawn noise field (drawing 700k normals
    per frame would cost more than the rendering)."""
    if not _NOISE_BANK:
        bank_rng = np.random.default_rng(12345)
        _NOISE_BANK.extend(bank_rng.standard_normal((SIZE[1] + 64, SIZE[0] + 64, 3), dtype=np.float32)
                           for _ in range(4))
    field = _NOISE_BANK[int(rng.integers(len(_NOISE_BANK)))]
    dy, dx = (int(v) for v in rng.integers(0, 64, 2))
    return field[dy:dy + SIZE[1], dx:dx + SIZE[0]] * sigma


def finish(canvas: np.ndarray, rng: np.random.Generator, gain: float) -> np.ndarray:
    """Supersampled scene → camera frame: downscale, exposure, sensor noise, JPEG."""
    frame = cv2.resize(canvas, SIZE, interpolation=cv2.INTER_AREA).astype(np.float32) * gain
    frame += _noise(rng, 2.0)
    frame = frame.clip(0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else frame


def _wobble(rng: np.random.Generator, n: int, amplitude: float, freq: tuple[float, float]) -> np.ndarray:
    """Smooth hand-like motion: a sum of three sinusoids with random frequencies and phases."""
    t = np.arange(n) / FPS
    out = np.zeros(n)
    for _ in range(3):
        out += np.sin(2 * np.pi * rng.uniform(*freq) * t + rng.uniform(0, 2 * np.pi))
    return amplitude * out / 3


def _head_pose(kind: str, rng: np.random.Generator,
               n: int) -> Iterator[tuple[np.ndarray, float, float, float]]:
    t = np.arange(n) / FPS
    if kind == "genuine-approach":
        start, speed = rng.uniform(1.6, 2.4), rng.uniform(0.7, 1.2)
        z = np.maximum(start - speed * t, rng.uniform(0.5, 0.7))
        x = rng.uniform(-0.25, 0.25) + _wobble(rng, n, 0.04, (0.5, 1.5))  # gait sway
        bob = _wobble(rng, n, 0.015, (1.5, 2.2))
        yaw = rng.uniform(-15, 15) + _wobble(rng, n, rng.uniform(2, 10), (0.2, 0.8))
        pitch = rng.uniform(-8, 8) + _wobble(rng, n, 4, (0.2, 0.8))
        roll = _wobble(rng, n, 3, (0.2, 0.6))
    else:
        z = rng.uniform(0.45, 1.0) + _wobble(rng, n, 0.03, (0.2, 0.6))
        x = rng.uniform(-0.15, 0.15) + _wobble(rng, n, 0.02, (0.2, 0.6))
        bob = _wobble(rng, n, 0.01, (0.2, 0.6))
        yaw = _wobble(rng, n, rng.uniform(10, 30), (0.2, 0.6))
        pitch = rng.uniform(-10, 5) + _wobble(rng, n, rng.uniform(3, 12), (0.2, 0.6))
        roll = _wobble(rng, n, 4, (0.2, 0.6))
    for i in range(n):
        yield np.array([x[i], CAMERA_ABOVE + bob[i], z[i]]), float(yaw[i]), float(pitch[i]), float(roll[i])


def _card_texture(photo: Photo, rng: np.random.Generator, border: bool, glossy: bool,
                  margin: float) -> np.ndarray:
    box = photo.box
    bw = box[2] - box[0]
    h, w = photo.image.shape[:2]
    x0, y0 = int(max(0, box[0] - margin * bw)), int(max(0, box[1] - margin * bw))
    x1, y1 = int(min(w, box[2] + margin * bw)), int(min(h, box[3] + margin * bw))
    tex = photo.image[y0:y1, x0:x1].astype(np.float32)
    if not glossy:  # paper: raised blacks, lowered whites, a little desaturated
        gray = tex.mean(axis=2, keepdims=True)
        tex = 28 + 0.78 * (0.85 * tex + 0.15 * gray)
    if border:
        pad = max(4, int(0.08 * max(tex.shape[:2])))
        tex = cv2.copyMakeBorder(tex, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(238, 240, 236))
    return tex.clip(0, 255).astype(np.uint8)


def _screen_texture(content: np.ndarray, rng: np.random.Generator, spec: dict) -> np.ndarray:
    """A device: bezel around a display showing ``content`` with gamma, a tint and a pixel grid."""
    sw, sh = spec["screen_px"]
    fitted = cv2.resize(content, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    fitted = fitted ** spec["gamma"] * spec["brightness"] * np.array(spec["tint"])
    # the pixel grid: dark gaps between pixels every `pitch` texels (sampled without a low-pass → moiré)
    pitch = spec["pitch"]
    yy, xx = np.mgrid[:sh, :sw]
    grid = 1.0 - spec["grid_depth"] * (((xx % pitch) == 0) | ((yy % pitch) == 0))
    display = (fitted * grid[..., None] * 255).clip(0, 255)
    bezel = spec["bezel_px"]
    device = cv2.copyMakeBorder(display, bezel, bezel, bezel, bezel, cv2.BORDER_CONSTANT,
                                value=spec["bezel_color"])
    return device.astype(np.uint8)


def _plane_corners(center: np.ndarray, size_m: tuple[float, float], yaw: float, pitch: float,
                   roll: float) -> np.ndarray:
    half_w, half_h = size_m[0] / 2, size_m[1] / 2
    local = np.array([[-half_w, half_h, 0], [half_w, half_h, 0], [half_w, -half_h, 0], [-half_w, -half_h, 0]])
    # aimed at the camera: its normal points back along the line of sight
    to_camera = -center / np.linalg.norm(center)
    base_yaw = np.degrees(np.arctan2(-to_camera[0], -to_camera[2]))
    base_pitch = np.degrees(np.arctan2(to_camera[1], np.hypot(to_camera[0], to_camera[2])))
    return face3d.head_to_world(local * 1000, center, yaw - base_yaw, pitch - base_pitch, roll)


def _draw_plane(canvas: np.ndarray, texture: np.ndarray, corners_world: np.ndarray,
                highlight: tuple[float, float, float] | None = None, nearest: bool = False) -> None:
    pixels, _ = CAMERA.project(corners_world, SUPERSAMPLE)
    h, w = texture.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(src, pixels.astype(np.float32))
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    size = (canvas.shape[1], canvas.shape[0])
    tex = texture.astype(np.float32)
    if highlight is not None:  # specular glare: a soft white spot fixed by the plane's orientation
        hx, hy, strength = highlight
        yy, xx = np.mgrid[:h, :w]
        spot = np.exp(-(((xx / w - hx) ** 2) + ((yy / h - hy) ** 2)) / (2 * 0.12**2))
        tex = tex + strength * spot[..., None]
    x, y, bw, bh = cv2.boundingRect(pixels.astype(np.float32))
    x0, y0 = max(x - 2, 0), max(y - 2, 0)
    x1, y1 = min(x + bw + 2, size[0]), min(y + bh + 2, size[1])
    if x1 <= x0 or y1 <= y0:
        return
    local = matrix.copy()
    local[0] -= x0 * local[2]
    local[1] -= y0 * local[2]
    local_size = (x1 - x0, y1 - y0)
    warped = cv2.warpPerspective(tex.clip(0, 255).astype(np.uint8), local, local_size, flags=flags)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), local, local_size, flags=cv2.INTER_LINEAR)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    region = canvas[y0:y1, x0:x1].astype(np.float32)
    canvas[y0:y1, x0:x1] = (region * (1 - alpha) + warped.astype(np.float32) * alpha).astype(np.uint8)


def _hand_pose(rng: np.random.Generator, n: int, still: bool,
               reach: tuple[float, float] = (0.35, 0.8)) -> Iterator[tuple[np.ndarray, float, float, float]]:
    if still:
        center = np.array([rng.uniform(-0.1, 0.1), CAMERA_ABOVE + rng.uniform(-0.05, 0.05),
                           rng.uniform(*reach)])
        pose = (rng.uniform(-15, 15), rng.uniform(-15, 15), rng.uniform(-5, 5))
        for _ in range(n):
            yield center, *pose
        return
    t = np.arange(n) / FPS
    approach = rng.random() < 0.5
    z0 = rng.uniform(*reach)
    z = (np.maximum(z0 + 0.2 - 0.25 * t, z0) if approach else z0) + _wobble(rng, n, 0.03, (0.3, 1.2))
    x = rng.uniform(-0.1, 0.1) + _wobble(rng, n, 0.03, (0.3, 1.5))
    y = CAMERA_ABOVE + rng.uniform(-0.05, 0.05) + _wobble(rng, n, 0.02, (0.3, 1.5))
    amp = rng.uniform(5, 25)
    yaw = _wobble(rng, n, amp, (0.2, 1.0))
    pitch = rng.uniform(-10, 10) + _wobble(rng, n, amp, (0.2, 1.0))
    roll = _wobble(rng, n, 6, (0.2, 1.0))
    for i in range(n):
        yield np.array([x[i], y[i], z[i]]), float(yaw[i]), float(pitch[i]), float(roll[i])


def _screen_spec(rng: np.random.Generator) -> dict:
    tablet = rng.random() < 0.5
    width_m, height_m = (0.15, 0.20) if tablet else (0.065, 0.14)
    bezel_m = 0.012 if tablet else 0.005
    px_w = 600 if tablet else 300
    return {
        "size_m": (width_m + 2 * bezel_m, height_m + 2 * bezel_m),
        "screen_px": (px_w, int(px_w * height_m / width_m)),
        "bezel_px": int(px_w * bezel_m / width_m),
        "bezel_color": tuple(float(v) for v in rng.uniform(5, 40, 1).repeat(3)),
        "gamma": rng.uniform(0.75, 1.3),
        "brightness": rng.uniform(0.9, 1.15),
        "tint": (rng.uniform(1.0, 1.1), 1.0, rng.uniform(0.9, 1.0)),
        "pitch": int(rng.integers(2, 4)),
        "grid_depth": rng.uniform(0.2, 0.5),
        "glare": rng.uniform(0, 120) if rng.random() < 0.6 else 0.0,
        "reach": (0.35, 0.7) if tablet else (0.2, 0.45),
    }


def _fill_screen(photo: Photo, spec: dict, zoom: float) -> np.ndarray:
    """The photo zoomed around the face to the display's aspect ratio."""
    sw, sh = spec["screen_px"]
    box = photo.box
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half_w = (box[2] - box[0]) / zoom / 2
    half_h = half_w * sh / sw
    src = np.array([[cx - half_w, cy - half_h], [cx + half_w, cy - half_h], [cx + half_w, cy + half_h]],
                   dtype=np.float32)
    dst = np.array([[0, 0], [sw, 0], [sw, sh]], dtype=np.float32)
    return cv2.warpAffine(photo.image, cv2.getAffineTransform(src, dst), (sw, sh),
                          borderMode=cv2.BORDER_REPLICATE)


def frames(kind: str, photo: Photo, seed: int, n: int = 72,
           still: bool | None = None) -> Iterator[np.ndarray]:
    """The camera frames (BGR uint8, 640x360) of one sequence; ``still`` (screens only) overrides the draw
    of whether the device is held by hand or stands still (a fifth of them)."""
    rng = np.random.default_rng(seed)
    wall = background(rng)
    gain = rng.uniform(0.8, 1.15)
    if kind in GENUINE:
        uv = face3d.texture_map(photo.landmarks)
        for position, yaw, pitch, roll in _head_pose(kind, rng, n):
            canvas = wall.copy()
            face3d.render_head(canvas, photo.image, uv, CAMERA, position, yaw, pitch, roll, SUPERSAMPLE)
            yield finish(canvas, rng, gain)
        return
    if kind in ("card-border", "card-plain", "photo-still"):
        border = kind == "card-border" or (kind == "photo-still" and rng.random() < 0.5)
        glossy = rng.random() < 0.5
        texture = _card_texture(photo, rng, border, glossy, margin=rng.uniform(0.15, 0.8))
        face_m = rng.uniform(0.10, 0.16)  # printed face width
        bw = photo.box[2] - photo.box[0]
        size_m = (texture.shape[1] / bw * face_m, texture.shape[0] / bw * face_m)
        strength = rng.uniform(40, 140) if glossy else 0.0
        for center, yaw, pitch, roll in _hand_pose(rng, n, still=kind == "photo-still"):
            canvas = wall.copy()
            highlight = (0.5 + yaw / 40, 0.5 - pitch / 40, strength) if glossy else None
            _draw_plane(canvas, texture, _plane_corners(center, size_m, yaw, pitch, roll), highlight)
            yield finish(canvas, rng, gain)
        return
    if kind in ("screen", "screen-replay"):
        spec = _screen_spec(rng)
        zoom = rng.uniform(0.45, 0.85)  # face width / display width
        if kind == "screen":
            texture = _screen_texture(_fill_screen(photo, spec, zoom), rng, spec)
        uv = face3d.texture_map(photo.landmarks)
        replay = list(_head_pose("genuine-turn", rng, n)) if kind == "screen-replay" else []
        drawn = rng.random() < 0.2  # drawn even when overridden: the rest of the clip stays the same
        held_still = drawn if still is None else still
        for i, (center, yaw, pitch, roll) in enumerate(_hand_pose(rng, n, held_still, spec["reach"])):
            if replay:
                texture = _screen_texture(_replay_frame(photo, uv, replay[i], spec, zoom), rng, spec)
            canvas = wall.copy()
            glare = (0.5 + yaw / 30, 0.4 - pitch / 30, spec["glare"]) if spec["glare"] else None
            _draw_plane(canvas, texture, _plane_corners(center, spec["size_m"], yaw, pitch, roll), glare,
                        nearest=True)
            yield finish(canvas, rng, gain)
        return
    raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")


def _replay_frame(photo: Photo, uv: np.ndarray, pose: tuple[np.ndarray, float, float, float], spec: dict,
                  zoom: float) -> np.ndarray:
    """One frame of the replayed video: the 3D head filmed close, framed like the still screen."""
    _position, yaw, pitch, roll = pose
    camera = face3d.Camera(width=spec["screen_px"][0], height=spec["screen_px"][1], hfov=40.0, tilt=0.0)
    face_px = zoom * spec["screen_px"][0]
    distance = camera.focal * 0.15 / face_px
    canvas = np.full((camera.height, camera.width, 3), 150, np.uint8)
    face3d.render_head(canvas, photo.image, uv, camera, np.array([0.0, 0.0, distance]), yaw, pitch, roll,
                       supersample=1)
    return canvas
