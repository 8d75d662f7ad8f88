"""An engine assembled from its settings (door, events, unlock frames, live view, collector, liveness),
shared by `smartlock engine` (camera over HTTP) and `smartlock vision` (camera and recognizer in-process)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smartlock.engine.settings import EngineSettings

if TYPE_CHECKING:
    import numpy as np

    from smartlock.engine.analysis import Analysis
    from smartlock.engine.engine import Engine
    from smartlock.engine.frames import FrameSource
    from smartlock.engine.gate import Gate
    from smartlock.engine.policy import Decision
    from smartlock.engine.sinks import UnlockLog
    from smartlock.engine.tracks import Detection
    from smartlock.recognition.recognizer import Recognizer as InProcessRecognizer
    from smartlock.recognition.schemas import Face

logger = logging.getLogger(__name__)


class InProcessRecognition:
    """Recognition of BGR frames by a Recognizer of this process; faces carry their embeddings for the
    tracks (with ArcFace, whose cosine the tracks' split rule is for), which the API never sends."""

    def __init__(self, recognizer: InProcessRecognizer) -> None:
        self.recognizer = recognizer
        self.keeps_embeddings = recognizer.backend_name == "arcface"
        self.takes_found = recognizer.embeds_found_faces

    def __call__(self, image: np.ndarray) -> list[Face]:
        from smartlock.engine.vision import bgr_to_rgb

        faces = self.recognizer.recognize(bgr_to_rgb(image))
        return [face.to_face(include_embedding=self.keeps_embeddings) for face in faces]

    def found(self, image: np.ndarray, detections: Sequence[Detection]) -> list[Face]:
        """The faces the gate found in ``image`` (with their five landmarks), embedded without detecting
        them again: the gate runs the recognizer's own detector (SCRFD: the shipped file, or the one
        SMARTLOCK_ARCFACE_DETECTOR names for both), so a face the gate sees is the face recognised, never
        lost between two detectors (each such loss breaks the track's run, and liveness judges only
        unbroken runs)."""
        from smartlock.engine.vision import bgr_to_rgb

        if not self.takes_found or any(det.landmarks is None for det in detections):
            return self(image)
        found = [(det.box, det.score, det.landmarks) for det in detections if det.landmarks is not None]
        faces = self.recognizer.recognize_found(bgr_to_rgb(image), found)
        return [face.to_face(include_embedding=self.keeps_embeddings) for face in faces]


def in_process(recognizer: InProcessRecognizer) -> InProcessRecognition:
    return InProcessRecognition(recognizer)


def camera_frame_options() -> dict[str, dict[str, Any]]:
    """Backend options for recognising camera frames in-process: the API's detector input size (320 for a
    640x360 frame; SMARTLOCK_ARCFACE_DETECTION_SIZE overrides), not the 640 of training on photos."""
    from smartlock.recognition.settings import RecognitionSettings

    return RecognitionSettings.model_construct(detection_size=None).backend_options()


def build_door(settings: EngineSettings) -> Callable[[Decision], None]:
    """Signed unlock requests, 0.3 s timeout and 3 tries as the seed; raises DoorError when all fail."""
    from smartlock.door.client import DoorClient

    secret = None
    if settings.door_secret_file is not None:
        from smartlock.door.auth import load_secret

        secret = load_secret(settings.door_secret_file)
    client = DoorClient(settings.door_api_url, secret, timeout=0.3, tries=3)

    def unlock(decision: Decision) -> None:
        client.unlock(person=decision.label, confidence=decision.confidence, source="engine")

    return unlock


def build_analysis_hooks(settings: EngineSettings,
                         webhook_token: str | None) -> tuple[list[Callable[[Analysis], object]], list[Any]]:
    """The engine's ``on_analysis`` consumers (the live view's publisher, the collector) and what to close."""
    from smartlock.engine.collector import Collector
    from smartlock.engine.live import LivePublisher
    from smartlock.engine.sinks import BackgroundHook

    hooks: list[Callable[[Analysis], object]] = []
    closers: list[Any] = []
    if settings.live_url:
        publisher = LivePublisher(settings.live_url, webhook_token)
        hooks.append(publisher)
        closers.append(publisher)
    if settings.collect_dir is not None:
        low, high = settings.collect_band
        collector = Collector(_NoFrames(), _no_recognition, settings.collect_dir, min_confidence=low,
                              max_confidence=high, keep_days=settings.keep_days,
                              keep_frames=settings.collect_keep_frames)
        collector.start_pruning()
        only_analysed = BackgroundHook(collector.consider, "collector")  # disk writes off the engine's thread

        def collect(analysis: Analysis) -> None:
            if analysis.analysed:
                only_analysed(analysis)

        hooks.append(collect)
        closers += [only_analysed, collector]
    return hooks, closers


class _NoFrames:
    """The engine's collector reads no camera of its own."""

    def wait_newer(self, seq: int, timeout: float) -> None:
        return None


def _no_recognition(image: object) -> object:
    raise RuntimeError("the engine's collector recognises nothing itself")


def build_liveness(settings: EngineSettings) -> tuple[Any, Any]:
    """(LivenessCheck, SpoofLockout) for --liveness on, else (None, None) with a warning in the log."""
    if settings.liveness == "off":
        logger.warning("LIVENESS IS OFF (--liveness off): a photo, a printed card or a screen showing an "
                       "enrolled person opens the door, as in the seed")
        return None, None
    from smartlock.engine.liveness.frame import FrameSettings
    from smartlock.engine.liveness.judge import LivenessJudge, LivenessSettings
    from smartlock.engine.spoofing import LOCKOUT_FILE, LivenessCheck, SpoofLockout

    frame = FrameSettings() if settings.liveness_still_frame == "on" else FrameSettings(enclosure=0.0)
    judge = LivenessJudge(LivenessSettings(model_path=settings.liveness_model, frame=frame))
    lockout = SpoofLockout(settings.log_path / LOCKOUT_FILE, settings.spoof_lockout,
                           pause=settings.spoof_lockout_minutes * 60)
    logger.info("Liveness on: cues %s%s%s; a track undecided after %g s is refused; %s",
                ", ".join(judge.cue_names),
                f", live confirmed by {', '.join(judge.confirm_names)}" if judge.confirm_names else "",
                "" if frame.enclosure else " (--liveness-still-frame off: a face held still in a frame is "
                "not refused for it)", settings.liveness_timeout,
                f"{settings.spoof_lockout} attacks within 10 minutes pause face unlock for "
                f"{settings.spoof_lockout_minutes:g} minutes" if settings.spoof_lockout else "no lockout")
    return LivenessCheck(judge, settings.liveness_timeout, settings.threshold), lockout


def fan_out(hooks: list[Callable[[Analysis], object]]) -> Callable[[Analysis], None] | None:
    if not hooks:
        return None

    def each(analysis: Analysis) -> None:
        for hook in hooks:
            hook(analysis)

    return each


@dataclass
class EngineParts:
    """An engine and what its owner starts (the unlock log's pruning) and closes afterwards, in order."""

    engine: Engine
    unlock_log: UnlockLog
    closers: list[Any]

    def close(self) -> None:
        for closer in self.closers:
            closer.close()


def webhook_token(settings: EngineSettings) -> str | None:
    """The token sent with the webhook's events and the live view's frames (read once, at start)."""
    from smartlock.service import read_secret

    if (settings.webhook_url or settings.live_url) and settings.webhook_token_file is not None:
        return read_secret(settings.webhook_token_file, "webhook token file")
    return None


def build_engine(settings: EngineSettings, frames: FrameSource, recognize: Callable[[np.ndarray], object],
                 gate: Gate, token: str | None) -> EngineParts:
    """The engine of `smartlock engine` and `smartlock vision` over ``frames`` and ``recognize``: the door
    (checked now), the policy, events (webhook, MQTT), unlock frames, the live view and collector hooks, and
    liveness. With --haar-file-path the seed's cascade is sampled at --fps (too slow for every frame)."""
    from smartlock.engine.engine import Engine, LoopSettings
    from smartlock.engine.policy import UnlockPolicy
    from smartlock.engine.preflight import check_door
    from smartlock.engine.sinks import EventSink, NullSink, TeeSink, UnlockLog, WebhookSink

    check_door(settings)  # a door that refuses us says so now, naming the flag, not at the first face
    events: EventSink = NullSink()
    if settings.webhook_url:
        events = WebhookSink(settings.webhook_url, token=token)
    mqtt = None
    if settings.mqtt_url is not None:
        from smartlock.integrations.engine import EngineMqtt

        # connects in the background: never delays the loop; the switch is also remembered on disk
        mqtt = EngineMqtt(settings, state_file=settings.log_path / "face-unlock").start()
        events = TeeSink(events, mqtt)
    unlock_log = UnlockLog(settings.log_path, settings.threshold, keep_days=settings.keep_days,
                           keep_count=settings.keep_unlocks)
    hooks, closers = build_analysis_hooks(settings, token)
    liveness, lockout = build_liveness(settings)
    seed_sampling = settings.haar_file_path is not None

    def seed_detector(image: np.ndarray) -> bool:
        return gate(image, time.monotonic()).any_face

    engine = Engine(frames, recognize, build_door(settings),
                    UnlockPolicy(settings.threshold, settings.min_frames, settings.window),
                    gate=None if seed_sampling else gate, detector=seed_detector if seed_sampling else None,
                    unlock_log=unlock_log, events=events, settings=LoopSettings.of(settings),
                    face_unlock=mqtt.face_unlock if mqtt is not None else None,
                    on_unlock_frame=mqtt.unlock_frame if mqtt is not None else None,
                    on_analysis=fan_out(hooks), liveness=liveness, lockout=lockout)
    return EngineParts(engine, unlock_log, [events, unlock_log, *closers])
