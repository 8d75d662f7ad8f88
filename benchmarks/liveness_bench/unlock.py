"""Time to unlock for the bench's walk-ups through the engine's own code, liveness on and off.

Each person is enrolled from three photos other than the one the bench renders; their walk-up (the bench's
``genuine-approach`` clip, same seed, after a second of its own empty hallway) goes frame by frame into an
``Engine`` with the SCRFD gate, the tracker, in-process ArcFace recognition (as ``up`` runs it), the unlock
policy and, with liveness on, the default judge. The clock is simulated: frames arrive at the clip's rate,
processing one takes as long as it took on this machine (measured), and frames that arrived meanwhile are
skipped, as the engine's reader keeps only the newest. So the times include this machine's compute but not
the camera's and the door's network hops (``time_to_unlock.py --part liveness`` has those, for 3 people).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.liveness_bench import LEAD, load_photo, scenes, seed_of

HALLWAY_FRAMES = 24  # 1 s of the empty hallway before each walk-up: longer than the gate's 0.5 s recheck
ENROLL_PHOTOS = 3


@dataclass
class WalkUp:
    name: str
    frames: list[np.ndarray]  # hallway, then the approach
    usable_at: float  # seconds from the approach's first frame to the first the gate finds usable (nan: none)


@dataclass
class Times:
    """Per walk-up: seconds from the approach's first frame to the door call, None when it stayed shut."""

    opened: list[float | None] = field(default_factory=list)
    usable_at: list[float] = field(default_factory=list)

    def from_first_frame(self) -> list[float]:
        return [t for t in self.opened if t is not None]

    def from_usable_face(self) -> list[float]:
        return [t - u for t, u in zip(self.opened, self.usable_at, strict=True) if t is not None and u == u]


class _NoFrames:
    """The engine's frame source is not used: frames are handed to ``Engine.process`` one by one."""

    def latest(self) -> None:
        return None


def enrolled_gallery(faces: Path, people: list[tuple[str, Path]], model_dir: Path) -> tuple[Any, list[str]]:
    """A Recognizer (ArcFace, camera-frame options as `vision` uses) with each person enrolled from up to
    three of their photos other than ``people``'s rendered one; the names enrolled."""
    from smartlock.engine.assembly import camera_frame_options
    from smartlock.recognition.backends.base import get_backend
    from smartlock.recognition.recognizer import Recognizer

    options = camera_frame_options()
    recognizer = Recognizer.create(model_dir, get_backend("arcface", **options.get("arcface", {})))
    enrolled = []
    for name, rendered in people:
        others = sorted(p for p in (faces / "people" / name).iterdir()
                        if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p != rendered)[:ENROLL_PHOTOS]
        outcomes = recognizer.enroll(name, [(p.name, p.read_bytes()) for p in others],
                                     multiple_faces="largest")
        if any(outcome.enrolled for outcome in outcomes):
            enrolled.append(name)
    return recognizer, enrolled


def walk_up(name: str, photo_path: Path, frames: int) -> WalkUp | None:
    """The bench's walk-up of ``name`` (as ``bench.sequence`` renders it), after the empty hallway."""
    photo = load_photo(photo_path)
    if photo is None:
        return None
    seed = seed_of(name, "genuine-approach")
    approach = list(scenes.frames("genuine-approach", photo, seed, frames + round(LEAD * scenes.FPS)))
    draws = np.random.default_rng(seed)  # the clip's own first draws (scenes.frames): its wall and gain
    wall = scenes.background(draws)
    gain = draws.uniform(0.8, 1.15)
    noise = np.random.default_rng(seed + 1)
    hallway = [scenes.finish(wall, noise, gain) for _ in range(HALLWAY_FRAMES)]
    return WalkUp(name, hallway + approach, first_usable(approach))


def first_usable(frames: list[np.ndarray]) -> float:
    """Seconds from the first of ``frames`` (at the bench's rate) to the first in which the engine's gate
    finds a usable face (nan: none)."""
    from smartlock.engine.gate import build_gate
    from smartlock.engine.vision import prepare

    gate = build_gate(None)
    return next((index / scenes.FPS for index, frame in enumerate(frames)
                 if gate.detect(prepare(frame, mirror=False), 0.0).faces), float("nan"))


def time_to_unlock(recognize: Callable[[np.ndarray], Any], walk: WalkUp, liveness: Any, start: float,
                   first_seq: int) -> float | None:
    """Seconds from the approach's first frame to the door call (None: shut until the clip ended).
    ``start`` and ``first_seq`` keep each walk-up's clock and frame numbers apart (the judge caches by them).
    """
    from smartlock.engine.engine import Engine, LoopSettings
    from smartlock.engine.frames import Frame
    from smartlock.engine.gate import build_gate
    from smartlock.engine.policy import UnlockPolicy
    from smartlock.engine.settings import DEFAULT_MIN_FRAMES, DEFAULT_THRESHOLD, DEFAULT_WINDOW

    now = [start]
    engine = Engine(_NoFrames(), recognize, lambda decision: None,  # type: ignore[arg-type]
                    UnlockPolicy(DEFAULT_THRESHOLD, DEFAULT_MIN_FRAMES, DEFAULT_WINDOW),
                    gate=build_gate(None), clock=lambda: now[0], liveness=liveness, settings=LoopSettings())
    onset = start + HALLWAY_FRAMES / scenes.FPS
    index = 0
    while index < len(walk.frames):
        arrived = start + index / scenes.FPS
        now[0] = max(now[0], arrived)
        began = time.perf_counter()
        opened = engine.process(Frame(image=walk.frames[index], seq=first_seq + index, received=arrived,
                                      captured=None))
        now[0] += time.perf_counter() - began
        if opened is not None:
            return now[0] - onset
        index = max(index + 1, int((now[0] - start) * scenes.FPS))  # the newest frame by now
    return None


def measure(faces: Path, people: list[tuple[str, Path]], frames: int, make_judge: Callable[[], Any],
            progress: Callable[[str], None] | None = None) -> dict[str, Times]:
    """{"on": Times, "off": Times} over the walk-ups of the people who could be enrolled (liveness with the
    engine's default timeout)."""
    from smartlock.engine.assembly import in_process
    from smartlock.engine.settings import DEFAULT_LIVENESS_TIMEOUT, DEFAULT_THRESHOLD
    from smartlock.engine.spoofing import LivenessCheck

    with tempfile.TemporaryDirectory(prefix="smartlock-unlock-bench-") as folder:
        recognizer, enrolled = enrolled_gallery(faces, people, Path(folder) / "model")
        recognize = in_process(recognizer)
        judge = make_judge()
        results = {"on": Times(), "off": Times()}
        paths = dict(people)
        warm = walk_up(enrolled[0], paths[enrolled[0]], frames) if enrolled else None
        if warm is not None:  # the models' first runs are slow: not a walk-up's time
            time_to_unlock(recognize, warm, LivenessCheck(judge, DEFAULT_LIVENESS_TIMEOUT, DEFAULT_THRESHOLD),
                           start=-1000.0, first_seq=-100_000)
        for number, name in enumerate(enrolled):
            walk = walk_up(name, paths[name], frames)
            if walk is None:
                continue
            for mode, times in results.items():
                check = (LivenessCheck(judge, DEFAULT_LIVENESS_TIMEOUT, DEFAULT_THRESHOLD) if mode == "on"
                         else None)
                run = 2 * number + (mode == "on")
                times.opened.append(time_to_unlock(recognize, walk, check, start=1000.0 * run,
                                                   first_seq=100_000 * run))
                times.usable_at.append(walk.usable_at)
            if progress:
                progress(f"time to unlock: {number + 1} of {len(enrolled)} walk-ups")
    return results


def table(results: dict[str, Times]) -> list[str]:
    """The rows `benchmarks/liveness.py` prints."""

    def spread(values: list[float]) -> str:
        if not values:
            return "         -         -"
        return f"{statistics.median(values):8.2f} s {float(np.percentile(values, 90)):6.2f} s"

    lines = ["liveness  unlocked   from the approach's first frame: median  p90   "
             "from the first usable face: median  p90"]
    for mode, times in results.items():
        lines.append(f"{mode:8}  {len(times.from_first_frame()):3d} of {len(times.opened):<3d} "
                     f"{spread(times.from_first_frame()):>44}   {spread(times.from_usable_face()):>36}")
    usable = [u for u in next(iter(results.values())).usable_at if u == u]
    if usable:
        lines.append(f"first usable face (40+ px): median {statistics.median(usable):.2f} s into the "
                     "approach")
    return lines
