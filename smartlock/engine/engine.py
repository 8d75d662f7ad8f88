"""The engine loop: sample frames, skip faceless ones, recognise, decide with the policy, unlock the door.

Every collaborator is injected (frame source, recognizer, door, face pre-filter, sinks, clock), so the
loop is tested with fakes and run for real by ``smartlock engine``. Any failure — camera gone,
recognition down or answering nonsense, door unreachable — is logged and never opens the door; the
loop carries on and recovers when the other side comes back. A full disk only loses the unlock frame:
the unlock itself is decided and performed as before, and the failure is logged once per outage.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smartlock.engine.files import current_timestamp
from smartlock.engine.frames import Frame, FrameSource, next_due_frame
from smartlock.engine.policy import Decision, UnlockPolicy
from smartlock.engine.settings import DEFAULT_BLOCK_TIME, DEFAULT_FPS, DEFAULT_MAX_FPS, EngineSettings
from smartlock.engine.sinks import EventSink, NullSink, UnlockLog
from smartlock.engine.vision import prepare
from smartlock.logs import Outage
from smartlock.recognition.schemas import Face, parse_faces

logger = logging.getLogger(__name__)

# prepared BGR frame -> the API's faces (Face models or their JSON, validated here); raises on failure
Recognizer = Callable[[np.ndarray], object]
# opens the door for a decision; raises (DoorError, ...) when it could not
DoorOpener = Callable[[Decision], None]
FaceDetector = Callable[[np.ndarray], bool]


@dataclass(frozen=True)
class LoopSettings:
    """How the loop runs: the CLI's rates and block time (from EngineSettings) plus internal pacing."""

    fps: float = DEFAULT_FPS  # sampling rate while nobody is in view (the seed's --fps)
    max_fps: float = DEFAULT_MAX_FPS  # cap on the analysis rate while a face is in view
    block_time: float = DEFAULT_BLOCK_TIME  # frames ignored for this long after an unlock
    mirror: bool = True  # flip frames horizontally, as the seed did
    burst_hold: float = 1.5  # keep analysing fast this long after the last sign of a face
    door_retry: float = 1.0  # after a failed unlock, wait this long before trying again
    event_interval: float = 1.0  # at most one recognised / refused-unknown event per person per interval
    max_frame_age: float = 2.0  # a frame this old (the camera froze) is not evidence of who is there now

    def __post_init__(self) -> None:
        from smartlock.errors import ConfigError

        if self.fps <= 0 or self.max_fps <= 0:
            raise ConfigError("fps must be positive")
        if self.block_time < 0:
            raise ConfigError("block-time must not be negative")

    @classmethod
    def of(cls, settings: EngineSettings) -> LoopSettings:
        """The loop settings of `smartlock engine`'s settings (a face keeps the burst going for a window)."""
        return cls(fps=settings.fps, max_fps=max(settings.max_fps, settings.fps),
                   block_time=settings.block_time, mirror=settings.mirror,
                   burst_hold=max(settings.window, 1.0))


@dataclass
class EngineStats:
    frames_seen: int = 0
    frames_without_face: int = 0
    stale_frames: int = 0
    frames_analysed: int = 0
    recognition_errors: int = 0
    door_errors: int = 0
    unlocks: int = 0
    unlocks_switched_off: int = 0  # decisions not acted on: the "face unlock" switch was off
    frames_not_saved: int = 0  # unlock frames lost (full disk, ...): the unlocks still happened
    unlocked: list[Decision] = field(default_factory=list)

    def summary(self) -> str:
        """One line a test (or a person) can wait on: "seen 12, without face 8, ..., unlocks 1"."""
        return (f"seen {self.frames_seen}, without face {self.frames_without_face}, "
                f"stale {self.stale_frames}, analysed {self.frames_analysed}, "
                f"recognition errors {self.recognition_errors}, door errors {self.door_errors}, "
                f"unlocks {self.unlocks}")


def recognize_logged(recognize: Recognizer, image: np.ndarray) -> list[Face] | None:
    """One recognition with the seed's log lines; None when the recogniser failed or answered nonsense
    (no evidence, so never an unlock)."""
    logger.info("Analysing frame...")
    start = time.perf_counter()
    logger.info("Firing face recognition request...")
    try:
        faces = parse_faces(recognize(image))
    except Exception as err:
        logger.error("Error occurred while executing face recognition request! %s: %s",
                     type(err).__name__, err)
        return None
    logger.info("Face recognition request took %.3fs", time.perf_counter() - start)
    logger.info("%s", json.dumps({"faces": [face.model_dump(mode="json") for face in faces]}))
    return faces


class Engine:
    def __init__(
        self,
        frames: FrameSource,
        recognize: Recognizer,
        door: DoorOpener,
        policy: UnlockPolicy,
        *,
        detector: FaceDetector | None = None,
        unlock_log: UnlockLog | None = None,
        events: EventSink | None = None,
        settings: LoopSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        face_unlock: Callable[[], bool] | None = None,
        on_unlock_frame: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        """``face_unlock()`` False (the MQTT switch) keeps the door shut while faces are still recognised
        and reported; ``on_unlock_frame(image)`` gets the frame of each unlock (MQTT's image entity)."""
        self.frames = frames
        self.recognize = recognize
        self.door = door
        self.policy = policy
        self.detector = detector
        self.unlock_log = unlock_log
        self.events = events or NullSink()
        self.settings = settings or LoopSettings()
        self.clock = clock
        self.face_unlock = face_unlock
        self.on_unlock_frame = on_unlock_frame
        self.stats = EngineStats()
        self._last_seq = 0
        self._next_due = 0.0
        self._burst_until = 0.0
        self._blocked_until = 0.0
        self._door_ready_at = 0.0
        self._last_event: dict[tuple[str, str], float] = {}
        self._saving = Outage("Saving unlock frames", logger)

    # -- the loop -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Process frames until ``stop`` is set."""
        logger.info(
            "Smart lock engine started: threshold %.2f, %d frame(s) within %.1f s, fps %g "
            "(up to %g with a face)",
            self.policy.threshold, self.policy.min_frames, self.policy.window,
            self.settings.fps, self.settings.max_fps,
        )
        while not stop.is_set():
            self.step(stop)
        logger.info("Smart lock face recognition engine shutdown")

    def step(self, stop: threading.Event | None = None, frame_timeout: float = 0.5) -> bool:
        """Wait for the next due frame and process it; False when no frame was processed this time."""
        due_at = max(self._blocked_until, self._next_due)
        frame = next_due_frame(self.frames, self._last_seq, due_at, self.clock, stop or threading.Event(),
                               frame_timeout)
        if frame is None:
            return False
        self._last_seq = frame.seq
        started = self.clock()
        self.process(frame)
        if logger.isEnabledFor(logging.DEBUG):  # tests wait on this line, not on the clock
            rejected = getattr(self.frames, "rejected", None)  # forged frames the reader dropped
            logger.debug("Frames: %s%s", self.stats.summary(),
                         f", rejected {rejected.summary()}" if rejected is not None else "")
        # a face in view (or just seen) switches to the burst rate at once; analysis time counts toward
        # the interval, so a slow recogniser simply runs back to back
        fast = self.clock() < self._burst_until
        self._next_due = started + 1.0 / (self.settings.max_fps if fast else self.settings.fps)
        return True

    # -- one frame -------------------------------------------------------------------------------

    def process(self, frame: Frame) -> Decision | None:
        """Analyse one frame; returns the decision when it opened the door."""
        self.stats.frames_seen += 1
        if self.clock() - frame.received > self.settings.max_frame_age:
            self.stats.stale_frames += 1
            logger.warning("Skipping a frame received %.1f s ago: the camera stream seems frozen",
                           self.clock() - frame.received)
            return None
        started = time.perf_counter()
        image = prepare(frame.image, mirror=self.settings.mirror)
        if self.detector is not None and not self.detector(image):
            self.stats.frames_without_face += 1
            return None
        self._burst_until = self.clock() + self.settings.burst_hold
        faces = self._recognize(image)
        if faces is not None:
            logger.info("Analysis took %.3fs", time.perf_counter() - started)
        if faces is None:
            self._burst_until = 0.0  # recognition is failing: retry at --fps, not as fast as we can
            return None
        self.stats.frames_analysed += 1
        if faces:
            self._burst_until = self.clock() + self.settings.burst_hold
        decision = self.policy.observe(frame.received, faces)
        self._report(faces)
        if decision is None or self.clock() < self._door_ready_at:
            return None
        if self.face_unlock is not None and not self.face_unlock():
            self.stats.unlocks_switched_off += 1
            self.policy.reset()
            logger.info("Face unlock is switched off: %s recognised (confidence %.3f), the door stays shut",
                        decision.label, decision.confidence)
            return None
        return decision if self._unlock(decision, image, faces, frame) else None

    def _recognize(self, image: np.ndarray) -> list[Face] | None:
        faces = recognize_logged(self.recognize, image)
        if faces is None:
            self.stats.recognition_errors += 1
        return faces

    def _unlock(self, decision: Decision, image: np.ndarray, faces: list[Face], frame: Frame) -> bool:
        try:
            self.door(decision)
        except Exception as err:  # door unreachable or refused: stays locked; retry after a pause
            self.stats.door_errors += 1
            self._door_ready_at = self.clock() + self.settings.door_retry
            logger.error("Unlock request failed, the door stays locked: %s: %s", type(err).__name__, err)
            return False
        logger.info("Door unlocked")
        logger.info("Unlocked for %s (confidence %.3f over %d frame(s))",
                    decision.label, decision.confidence, decision.frames)
        self.stats.unlocks += 1
        self.stats.unlocked.append(decision)
        self.policy.reset()
        self._blocked_until = self.clock() + self.settings.block_time
        self._burst_until = 0.0
        folder = self._save_unlock_frame(image, faces, decision, frame)
        if self.on_unlock_frame is not None:
            try:
                self.on_unlock_frame(image)
            except Exception as err:  # the door is open already
                logger.warning("Unlock frame not passed on: %s", err)
        self.events.emit({
            "event": "unlocked",
            "time": current_timestamp(),
            "person": decision.label,
            "confidence": decision.confidence,
            "frames": decision.frames,
            "captured": frame.captured,
            **({"frame_dir": folder.name} if folder is not None else {}),  # under <log-path>/unlock-frames/
        })
        return True

    def _save_unlock_frame(self, image: np.ndarray, faces: list[Face], decision: Decision,
                           frame: Frame) -> Path | None:
        if self.unlock_log is None:
            return None
        try:
            folder = self.unlock_log.save(image, faces, decision, {"captured": frame.captured})
        except Exception as err:  # OSError on a full disk, above all: the door is open already
            self.stats.frames_not_saved += 1
            self._saving.failed(err)
            return None
        self._saving.ok()
        logger.info("Unlock frame saved to %s", folder)
        return folder

    def _report(self, faces: list[Face]) -> None:
        known = self.policy.above_threshold(faces)
        for label, confidence in known.items():
            self._emit_throttled("recognised", label, {
                "person": label, "confidence": confidence, "frames": self.policy.evidence(label),
                "needed": self.policy.min_frames,
            })
        if faces and not known:
            best = max(faces, key=lambda face: face.confidence)
            self._emit_throttled("refused-unknown", "", {
                "faces": len(faces), "best_label": best.label, "best_confidence": best.confidence,
            })

    def _emit_throttled(self, kind: str, key: str, payload: dict[str, Any]) -> None:
        now = self.clock()
        last = self._last_event.get((kind, key))
        if last is not None and now - last < self.settings.event_interval:
            return
        self._last_event[(kind, key)] = now
        self.events.emit({"event": kind, "time": current_timestamp(), **payload})
