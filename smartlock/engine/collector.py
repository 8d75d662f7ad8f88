"""The data collector: saves frames in which someone's confidence lies in [min, max], for later enrollment.

Same camera, pre-filter and recogniser as the engine, but no door: each saved frame gets the seed's
name ``<label>-<confidence:.2f>-<timestamp>.jpeg`` (full resolution, as the camera saw it: only recognition
sees the frame mirrored), a crop of
each face in the band (``<stem>.face-<n>.jpeg``) and a JSON sidecar (``<stem>.json``) with every face.
Every file is 0600 in a 0700 folder; frames older than ``keep_days`` or beyond the newest ``keep_frames``
are pruned in the background. A failed save (a full disk) is logged once per outage and skipped.

Under `smartlock up` there is no collector process: the engine hands each frame it analysed to
``Collector.consider`` (one analysis for both), at the engine's analysis resolution.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from smartlock.engine.analysis import Analysis
from smartlock.engine.engine import FaceDetector, Recognizer, recognize_logged, unmirrored
from smartlock.engine.files import (
    collected_path,
    crop_name,
    current_timestamp,
    prune_collected,
    write_collected,
)
from smartlock.engine.frames import Frame, FrameSource, next_due_frame
from smartlock.engine.settings import DEFAULT_FPS, DEFAULT_KEEP_DAYS, DEFAULT_KEEP_FRAMES
from smartlock.engine.sinks import PRUNE_EVERY, PRUNE_GAP, Pruner
from smartlock.engine.vision import encode_jpeg_bgr, prepare
from smartlock.errors import ConfigError
from smartlock.logs import Outage
from smartlock.recognition.schemas import BoundingBox, Face

logger = logging.getLogger(__name__)

# (frame path, frame JPEG, sidecar, crops by name); raises OSError (full disk, ...)
CollectedWriter = Callable[[Path, bytes, dict[str, Any], dict[str, bytes]], None]

CROP_MARGIN = 0.2  # a little context around the detector's box helps whoever reviews the crop


def in_band(face: Face, low: float, high: float) -> bool:
    return low <= face.confidence <= high


def scaled(face: Face, scale: float) -> Face:
    """``face`` with its box in pixels of an image ``scale`` times as wide (the full frame, not the
    analysed one)."""
    left, top, right, bottom = (value * scale for value in face.box)
    box = BoundingBox(left=left, top=top, right=right, bottom=bottom)
    return face.model_copy(update={"bounding_box": box})


def crop_box(box: tuple[float, float, float, float], width: int, height: int,
             margin: float = CROP_MARGIN) -> tuple[int, int, int, int] | None:
    left, top, right, bottom = box
    pad_x, pad_y = (right - left) * margin, (bottom - top) * margin
    x0, y0 = max(0, int(left - pad_x)), max(0, int(top - pad_y))
    x1, y1 = min(width, round(right + pad_x)), min(height, round(bottom + pad_y))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


class Collector:
    def __init__(
        self,
        frames: FrameSource,
        recognize: Recognizer,
        out_dir: Path,
        *,
        min_confidence: float,
        max_confidence: float,
        detector: FaceDetector | None = None,
        fps: float = DEFAULT_FPS,
        mirror: bool = True,
        clock: Callable[[], float] = time.monotonic,
        keep_days: float = DEFAULT_KEEP_DAYS,
        keep_frames: int = DEFAULT_KEEP_FRAMES,
        writer: CollectedWriter = write_collected,
    ) -> None:
        if not 0.0 <= min_confidence <= max_confidence <= 1.0:
            raise ConfigError(
                f"need 0 <= min-confidence <= max-confidence <= 1, got {min_confidence} and {max_confidence}"
            )
        if fps <= 0:
            raise ConfigError("fps must be positive")
        self.frames = frames
        self.recognize = recognize
        self.out_dir = Path(out_dir)
        self.min_confidence = min_confidence
        self.max_confidence = max_confidence
        self.detector = detector
        self.fps = fps
        self.mirror = mirror
        self.clock = clock
        self.keep_days = keep_days
        self.keep_frames = keep_frames
        self._writer = writer
        self.saved: deque[Path] = deque(maxlen=100)  # the latest frames saved (for logs and tests)
        self.errors = 0
        self.save_errors = 0
        self._saving = Outage("Saving collected frames", logger)
        self.pruner: Pruner | None = None
        self._last_seq = 0
        self._next_due = 0.0

    def prune(self, now: float | None = None) -> int:
        """Apply the retention now (``now``: wall-clock seconds, for tests); how many frames went."""
        return prune_collected(self.out_dir, self.keep_frames, keep_days=self.keep_days, now=now)

    def start_pruning(self, every: float = PRUNE_EVERY, gap: float = PRUNE_GAP) -> Pruner:
        self.pruner = Pruner(self.prune, "collected frames", every, gap).start()
        return self.pruner

    def close(self) -> None:
        if self.pruner is not None:
            self.pruner.close()

    def run(self, stop: threading.Event) -> None:
        logger.info("Data collector started: saving frames with confidence in [%.2f, %.2f] to %s",
                    self.min_confidence, self.max_confidence, self.out_dir)
        while not stop.is_set():
            self.step(stop)
        logger.info("Data collector shutdown")

    def step(self, stop: threading.Event | None = None, frame_timeout: float = 0.5) -> bool:
        frame = next_due_frame(self.frames, self._last_seq, self._next_due, self.clock,
                               stop or threading.Event(), frame_timeout)
        if frame is None:
            return False
        self._last_seq = frame.seq
        self._next_due = self.clock() + 1.0 / self.fps
        self.process(frame)
        return True

    def process(self, frame: Frame) -> Path | None:
        """Analyse one frame; the saved frame's path when some face lies in the band."""
        image = frame.image
        analysed = prepare(image, mirror=False)
        if self.detector is not None and not self.detector(analysed):
            return None
        shown = np.ascontiguousarray(analysed[:, ::-1]) if self.mirror else analysed
        faces = recognize_logged(self.recognize, shown)
        if faces is None:
            self.errors += 1
            return None
        if self.mirror:
            faces = [unmirrored(face, analysed.shape[1]) for face in faces]
        faces = [scaled(face, image.shape[1] / analysed.shape[1]) for face in faces]
        return self._keep(image, faces, frame.captured)

    def consider(self, analysis: Analysis) -> Path | None:
        """The engine's hook: save the frame it analysed when a face lies in the band."""
        if not analysis.analysed:
            return None
        return self._keep(analysis.image, analysis.recognised, None)

    def _keep(self, image: np.ndarray, faces: list[Face], captured: float | None) -> Path | None:
        chosen = [face for face in faces if in_band(face, self.min_confidence, self.max_confidence)]
        if not chosen:
            return None
        return self._save(image, faces, max(chosen, key=lambda face: face.confidence), captured)

    def _save(self, image: np.ndarray, faces: list[Face], named: Face, captured: float | None) -> Path | None:
        path = collected_path(self.out_dir, named.label, named.confidence, current_timestamp())
        entries: list[dict[str, Any]] = []
        crops: dict[str, bytes] = {}
        for face in faces:
            entry = {**face.model_dump(mode="json"),
                     "in_band": in_band(face, self.min_confidence, self.max_confidence), "crop": None}
            box = crop_box(face.box, image.shape[1], image.shape[0])
            if entry["in_band"] and box is not None:
                entry["crop"] = crop_name(path, len(crops) + 1)
                x0, y0, x1, y1 = box
                crops[entry["crop"]] = encode_jpeg_bgr(image[y0:y1, x0:x1])
            entries.append(entry)
        sidecar = {
            "frame": path.name,
            "captured": captured,
            "min_confidence": self.min_confidence,
            "max_confidence": self.max_confidence,
            "faces": entries,
        }
        try:
            self._writer(path, encode_jpeg_bgr(image), sidecar, crops)
        except OSError as err:  # a full disk above all: skip this frame, try the next one
            self.save_errors += 1
            self._saving.failed(err)
            return None
        self._saving.ok()
        if self.pruner is not None:
            self.pruner.poke()
        self.saved.append(path)
        logger.info("Frame saved: %s", path)
        return path
