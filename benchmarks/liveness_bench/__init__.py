"""The liveness bench: rendered genuine and attack sequences seen through the real face detector and tracker.

``sequence(kind, person, seed)`` renders the frames (scenes.py), runs the gate's detector on each (SCRFD's
five landmarks, so the landmarks carry a real detector's noise and bias, not the renderer's ground truth),
links them with the engine's Tracker and returns the longest track's observations. Results are cached
outside the repository (they hold pixels of the photos): ``SMARTLOCK_LIVENESS_CACHE`` or a temp folder.
People are split into tune and report halves by a hash of their name; thresholds are tuned on tune only.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from benchmarks.liveness_bench import scenes
from smartlock.engine import tracks as tracking
from smartlock.engine.tracks import Detection, Observation, Tracker

Detector = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
CACHE_VERSION = "6"
# every clip is rendered this much longer than the frames judged: a walk-up starts 1.6-2.4 m away and the gate
# finds the face up to ~1.5 s in, a screen's face may be found late too; so the track, not the clip, runs
# to the timeout (60-frame clips cut most walk-up tracks, and some attack tracks, short of 2.5 s)
LEAD = 1.5


def split_of(name: str) -> str:
    """'tune' or 'report', fixed by the name (about half each)."""
    return "tune" if hashlib.sha256(name.encode()).digest()[0] % 2 == 0 else "report"


@cache
def detector() -> Detector:
    """The engine's gate: SCRFD at the gate's input size (``--gate-size``, 320), so the bench's boxes and
    landmarks carry the same detector noise as the engine's tracks."""
    from smartlock.engine.gate import DEFAULT_GATE_SIZE, ScrfdFinder

    finder = ScrfdFinder(DEFAULT_GATE_SIZE)

    def detect(image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        found = finder(np.ascontiguousarray(image_rgb[:, :, ::-1]))
        return (np.array([d.box for d in found], np.float32).reshape(-1, 4),
                np.array([d.score for d in found], np.float32),
                np.array([d.landmarks for d in found], np.float32).reshape(-1, 5, 2))

    return detect


def detector_name() -> str:
    from smartlock.engine.gate import DEFAULT_GATE_SIZE

    return f"SCRFD gate at {DEFAULT_GATE_SIZE}"


def people(faces: Path, split: str, limit: int) -> list[tuple[str, Path]]:
    """(name, first usable photo) of up to ``limit`` people of one split, in name order."""
    chosen = []
    for folder in sorted((faces / "people").iterdir()):
        if folder.is_dir() and split_of(folder.name) == split:
            photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            if photos:
                chosen.append((folder.name, photos[0]))
        if len(chosen) >= limit:
            break
    return chosen


def load_photo(path: Path) -> scenes.Photo | None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return None
    boxes, _scores, points = detector()(np.ascontiguousarray(image[:, :, ::-1]))
    if len(boxes) == 0 or boxes[0][2] - boxes[0][0] < 50:
        return None
    return scenes.Photo(image=image, landmarks=points[0], box=boxes[0])


def observe(frames: list[np.ndarray] | object, t0: float = 0.0,
            fps: float = scenes.FPS) -> list[list[Observation]]:
    """Detector + tracker over frames; every track's observations, longest first."""
    tracker = Tracker()
    tracks: dict[int, list[Observation]] = {}
    for seq, frame in enumerate(frames):  # type: ignore[call-overload]
        boxes, scores, points = detector()(np.ascontiguousarray(frame[:, :, ::-1]))
        detections = [Detection(box=tuple(float(v) for v in box), score=float(score),  # type: ignore[arg-type]
                                landmarks=np.asarray(pts, np.float32))
                      for box, score, pts in zip(boxes, scores, points, strict=True)]
        for track in tracker.update(t0 + seq / fps, seq, detections, image=frame):
            tracks.setdefault(track.id, []).append(track.history[-1])
    return sorted(tracks.values(), key=len, reverse=True)


def cache_dir() -> Path:
    """A private folder (0700) for rendered sequences: they hold pixels of the photos."""
    path = Path(os.environ.get("SMARTLOCK_LIVENESS_CACHE")
                or Path(tempfile.gettempdir()) / f"smartlock-liveness-bench-{os.getuid()}")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_uid != os.getuid():
        raise SystemExit(f"{path} belongs to another user: set SMARTLOCK_LIVENESS_CACHE to a folder of yours")
    return path


def _save(path: Path, observations: list[Observation]) -> None:
    """Plain arrays (npz, no pickle: loading a cache never runs code)."""
    arrays: dict[str, np.ndarray] = {"t": np.array([o.t for o in observations], np.float64),
                                     "seq": np.array([o.seq for o in observations], np.int64),
                                     "box": np.array([o.box for o in observations],
                                                     np.float32).reshape(-1, 4),
                                     "score": np.array([o.detection.score for o in observations], np.float32),
                                     "size": np.array([o.frame_size for o in observations], np.int32)}
    for index, obs in enumerate(observations):
        if obs.landmarks is not None:
            arrays[f"landmarks_{index}"] = np.asarray(obs.landmarks, np.float32)
        if obs.crop is not None:
            arrays[f"crop_{index}"] = obs.crop
            arrays[f"origin_{index}"] = np.asarray(obs.crop_origin, np.float64)
    temp = path.with_suffix(".tmp.npz")
    np.savez_compressed(temp, **arrays)
    temp.replace(path)


def _load(path: Path) -> list[Observation]:
    with np.load(path, allow_pickle=False) as data:
        result = []
        for index in range(len(data["t"])):
            landmarks = data.get(f"landmarks_{index}")
            crop = data.get(f"crop_{index}")
            origin = tuple(float(v) for v in data[f"origin_{index}"]) if crop is not None else (0.0, 0.0, 1.0)
            box = tuple(float(v) for v in data["box"][index])
            size = tuple(int(v) for v in data["size"][index])
            result.append(Observation(
                t=float(data["t"][index]), seq=int(data["seq"][index]),
                detection=Detection(box=box, score=float(data["score"][index]),  # type: ignore[arg-type]
                                    landmarks=landmarks),
                frame_size=size, crop=crop, crop_origin=origin))  # type: ignore[arg-type]
    return result


def sequence(kind: str, name: str, photo_path: Path, seed: int, n: int = 72) -> list[Observation] | None:
    """The main track of one rendered sequence (cached); None when the photo has no usable face."""
    crops = f"{tracking.CROP_CONTEXT}|{tracking.CROP_MAX_SIDE}"  # what the tracker keeps: part of the result
    key = hashlib.sha256(f"{CACHE_VERSION}|{kind}|{photo_path}|{seed}|{n}|{detector_name()}|{crops}".encode())
    path = cache_dir() / f"{key.hexdigest()[:20]}.npz"
    if path.exists():
        return _load(path)
    photo = load_photo(photo_path)
    if photo is None:
        return None
    tracks = observe(scenes.frames(kind, photo, seed, n))
    result = tracks[0] if tracks else []
    _save(path, result)
    return result


def seed_of(name: str, kind: str, rep: int = 0) -> int:
    return int.from_bytes(hashlib.sha256(f"{name}|{kind}|{rep}".encode()).digest()[:4], "little")


def bench(faces: Path, split: str, limit: int, frames: int = 60, kinds: tuple[str, ...] = scenes.KINDS,
          progress: Callable[[str], None] | None = None) -> dict[str, list[tuple[str, list[Observation]]]]:
    """{kind: [(person, observations of the main track)]} for one split (rendered once, then cached)."""
    result: dict[str, list[tuple[str, list[Observation]]]] = {kind: [] for kind in kinds}
    for index, (name, path) in enumerate(people(faces, split, limit)):
        for kind in kinds:
            n = frames + round(LEAD * scenes.FPS)
            observations = sequence(kind, name, path, seed_of(name, kind), n)
            if observations is None:
                break
            result[kind].append((name, observations))
        if progress:
            progress(f"{split}: {index + 1} people")
    return result
