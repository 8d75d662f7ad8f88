"""The engine loop: gate every frame, track faces, recognise, decide per track with the policy, unlock.

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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from smartlock.engine.analysis import Analysis
from smartlock.engine.assembly import InProcessRecognition
from smartlock.engine.files import current_timestamp
from smartlock.engine.frames import Frame, FrameSource, next_due_frame
from smartlock.engine.gate import Gate, GateResult
from smartlock.engine.policy import Decision, UnlockPolicy
from smartlock.engine.sinks import EventSink, NullSink, UnlockLog
from smartlock.engine.spoofing import CheckResult, LivenessCheck, Pending, SpoofLockout
from smartlock.engine.stats import EngineStats, LoopSettings
from smartlock.engine.tracks import Detection, Recognition, Track, Tracker, iou
from smartlock.engine.vision import prepare
from smartlock.logs import Outage
from smartlock.recognition.schemas import BoundingBox, Face, parse_faces

logger = logging.getLogger(__name__)

# prepared BGR frame -> the API's faces (Face models or their JSON, validated here); raises on failure
Recognizer = Callable[[np.ndarray], object]


@runtime_checkable
class RecognizesFound(Protocol):
    """A recogniser that can also recognise faces the gate already found (assembly.InProcessRecognition)."""

    def __call__(self, image: np.ndarray) -> object: ...

    def found(self, image: np.ndarray, detections: Sequence[Detection]) -> object: ...


# opens the door for a decision; raises (DoorError, ...) when it could not
DoorOpener = Callable[[Decision], None]
FaceDetector = Callable[[np.ndarray], bool]
MATCH_IOU = 0.3  # a recognised face belongs to the gate's detection it overlaps at least this much


def recognize_logged(recognize: Recognizer, image: np.ndarray,
                     keep_embeddings: bool = False) -> list[Face] | None:
    """One recognition with the seed's log lines; None when the recogniser failed or answered nonsense
    (no evidence, so never an unlock). ``keep_embeddings`` only for a recogniser of this process that
    computes them (assembly.InProcessRecognition.keeps_embeddings), never for an answer over HTTP."""
    logger.info("Analysing frame...")
    start = time.perf_counter()
    logger.info("Firing face recognition request...")
    try:
        faces = parse_faces(recognize(image), keep_embeddings=keep_embeddings)
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
        gate: Gate | None = None,
        detector: FaceDetector | None = None,
        unlock_log: UnlockLog | None = None,
        events: EventSink | None = None,
        settings: LoopSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        face_unlock: Callable[[], bool] | None = None,
        on_unlock_frame: Callable[[np.ndarray], None] | None = None,
        on_analysis: Callable[[Analysis], None] | None = None,
        tracker: Tracker | None = None,
        liveness: LivenessCheck | None = None,
        lockout: SpoofLockout | None = None,
    ) -> None:
        """``gate`` (the default in `smartlock engine`) looks at every frame and sends only frames with a
        usable face to recognition, at most ``max_fps`` a second; without it, frames are sampled at ``fps``
        (``max_fps`` while a face is in view) and ``detector`` (a yes/no pre-filter) or nothing decides.
        ``face_unlock()`` False (the MQTT switch) keeps the door shut while faces are still recognised
        and reported; ``on_unlock_frame(image)`` gets the frame of each unlock (MQTT's image entity);
        ``on_analysis`` gets every frame recognition analysed, with its faces (live view, collector).
        ``liveness`` (None: off, the seed's rule) must judge a decision's track live before the door opens;
        ``lockout`` pauses face unlock after repeated attacks."""
        self.frames = frames
        self.recognize = recognize
        self.door = door
        self.policy = policy
        self.gate = gate
        self.detector = detector
        self.unlock_log = unlock_log
        self.events = events or NullSink()
        self.settings = settings or LoopSettings()
        self.clock = clock
        self.face_unlock = face_unlock
        self.on_unlock_frame = on_unlock_frame
        self.on_analysis = on_analysis
        self.tracker = tracker or Tracker(keep_crops=gate is not None)
        self.liveness = liveness
        if liveness is not None:
            liveness.threshold = policy.threshold  # the frames judged are those recognised above it
        self.lockout = lockout
        self.stats = EngineStats()
        self._last_seq = 0
        self._next_due = 0.0
        self._next_recognition = 0.0
        self._burst_until = 0.0
        self._blocked_until = 0.0
        self._door_ready_at = 0.0
        self._last_event: dict[tuple[str, str], float] = {}
        self._saving = Outage("Saving unlock frames", logger)
        self._analysis_failed = Outage("Passing analyses on", logger)

    # -- the loop -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Process frames until ``stop`` is set."""
        logger.info(
            "Smart lock engine started: threshold %.2f, %d frame(s) of one face track within %.1f s, %s",
            self.policy.threshold, self.policy.min_frames, self.policy.window,
            f"{self.gate.name} gate on every frame, recognition up to {self.settings.max_fps:g} fps"
            if self.gate is not None else
            f"fps {self.settings.fps:g} (up to {self.settings.max_fps:g} with a face)",
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
        if self.gate is None:
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
        if self.gate is not None and self.gate.unchanged(frame.image, self.clock()):
            self.stats.frames_without_face += 1  # nobody in view and nothing moved: not even resized
            self._publish(frame, None, [], [], analysed=False)
            return None
        image = prepare(frame.image, mirror=False)  # as the camera saw it; only recognition sees it mirrored
        detections: list[Detection] | None = None
        if self.gate is not None:
            gated = self.gate.detect(image, self.clock())
            tracks = self.tracker.update(frame.received, frame.seq, gated.detections, image)
            if self.liveness is not None:
                if self.tracker.ended:
                    self._report_undecided(self.liveness.forget(self.tracker.ended))
                for track in tracks:  # tracks recognised as someone are judged on every frame they show
                    if any(obs.recognition is not None and obs.recognition.confidence > self.policy.threshold
                           for obs in track.history):
                        self.liveness.observe(track)
            self._report_unusable(gated, tracks)
            if not gated.faces:
                self.stats.frames_without_face += 1
                self._publish(frame, image, [], tracks, analysed=False)
                return None
            if self.clock() < self._next_recognition:  # recognition is busy at --max-fps: boxes only
                self.stats.frames_gated += 1
                self._publish(frame, image, [], tracks, analysed=False)
                return None
            detections = gated.faces
            # on the schedule (not "now + interval"), so a 25 fps camera gives 10 recognitions, not 8.3
            interval = 1.0 / self.settings.max_fps
            late = self.clock() - self._next_recognition
            self._next_recognition = (self._next_recognition if late < interval else self.clock()) + interval
        elif self.detector is not None and not self.detector(image):
            self.stats.frames_without_face += 1
            return None
        self._burst_until = self.clock() + self.settings.burst_hold
        faces = self._recognize(image, detections)
        if faces is not None:
            logger.info("Analysis took %.3fs", time.perf_counter() - started)
        if faces is None:
            self._burst_until = 0.0  # recognition is failing: retry at --fps, not as fast as we can
            if self.gate is not None:  # nobody recognised these faces: not known to be the ones before
                for track in tracks[:len(gated.faces)]:
                    track.mark_break(track.last.t)
            return None
        self.stats.frames_analysed += 1
        if faces:
            self._burst_until = self.clock() + self.settings.burst_hold
        face_tracks = self._track(frame, image, faces, detections)
        decision = self.policy.observe(frame.received, faces, [track.id for track in face_tracks])
        self._report(faces, face_tracks)
        try:
            return self._decide(decision, image, faces, frame)
        finally:  # after the door (and the liveness verdict): the live view and the collector
            self._publish(frame, image, faces, face_tracks, analysed=True)

    def _decide(self, decision: Decision | None, image: np.ndarray, faces: list[Face],
                frame: Frame) -> Decision | None:
        if decision is None or self.clock() < self._door_ready_at:
            return None
        liveness = self._allowed(decision)
        if liveness is None:
            return None
        if self.face_unlock is not None and not self.face_unlock():
            self.stats.unlocks_switched_off += 1
            self.policy.reset()
            logger.info("Face unlock is switched off: %s recognised (confidence %.3f), the door stays shut",
                        decision.label, decision.confidence)
            return None
        return decision if self._unlock(decision, image, faces, frame, liveness) else None

    def _allowed(self, decision: Decision) -> dict[str, Any] | None:
        """None when face unlock is paused or the decision's track is not (yet) judged live, else what the
        unlock event says of liveness; a refusal is reported once per track (attack, timeout) or per
        second (pause)."""
        if self.lockout is not None:
            until = self.lockout.paused_until()
            if until is not None:
                self.stats.refused_lockout += 1
                self._emit_throttled("refused-lockout", decision.label, {
                    "person": decision.label, "confidence": decision.confidence, "track": decision.track,
                    "until": iso_time(until)})
                return None
        if self.liveness is None:
            return {"liveness": "off"}
        track = self.tracker.get(decision.track) if decision.track is not None else None
        if track is None:  # nothing to judge: the door stays shut
            return None
        result = self.liveness.check(track, self.clock(), decision.label, decision.confidence)
        if result.outcome == "live":
            decided_by = ", ".join(result.details.get("decided_by", []))
            logger.info("Track %d judged live by %s", track.id, decided_by)
            return {"liveness": "live", "decided_by": result.details.get("decided_by", []),
                    "liveness_wait": round(result.waited, 3)}
        if result.outcome in ("wait", "refused"):
            self.stats.liveness_waits += result.outcome == "wait"
            return None
        self.stats.refused_spoof += 1
        # an undecided track counts too: else a picture the cues cannot judge could be retried for ever
        paused = self.lockout.record_attack() if self.lockout is not None else None
        details = result.details
        logger.warning("Refused %s (confidence %.3f, track %d): %s%s", decision.label, decision.confidence,
                       track.id, "presentation attack caught by " + ", ".join(details.get("decided_by", []))
                       if result.outcome == "attack" else "liveness undecided after the timeout",
                       "; face unlock paused" if paused else "")
        self.events.emit({
            "event": "refused-spoof", "time": current_timestamp(), "person": decision.label,
            "confidence": decision.confidence, "track": track.id, "reason": result.outcome, **details,
            **({"lockout_until": iso_time(paused)} if paused else {}),
        })
        if paused is not None:
            self.events.emit({"event": "lockout", "time": current_timestamp(), "until": iso_time(paused),
                              "attacks": self.lockout.limit if self.lockout is not None else None})
        return None

    def _report_undecided(self, left: list[tuple[Track, Pending]]) -> None:
        """Tracks recognised as someone that left before liveness could judge them: the door stayed shut;
        say so (they do not count toward the lockout: people walking past are not attacks)."""
        for track, pending in left:
            self.stats.refused_spoof += 1
            details = CheckResult("timeout", pending.verdict).details
            logger.info("Track %d (%s, confidence %.3f) left before it was judged live; the door stayed shut",
                        track.id, pending.label, pending.confidence)
            self.events.emit({
                "event": "refused-spoof", "time": current_timestamp(), "person": pending.label,
                "confidence": pending.confidence, "track": track.id, "reason": "undecided", **details,
            })

    def _recognize(self, image: np.ndarray, detections: list[Detection] | None = None) -> list[Face] | None:
        """Recognition of the frame (mirrored when the settings say so); with the gate's ``detections``
        (SCRFD's, with landmarks), a recogniser that can embed them (in-process ArcFace) recognises those
        faces instead of finding its own."""
        mirror, width = self.settings.mirror, image.shape[1]
        shown = np.ascontiguousarray(image[:, ::-1]) if mirror else image
        recognize = self.recognize
        if (detections and all(det.landmarks is not None for det in detections)
                and isinstance(recognize, RecognizesFound)):
            given, takes_found = detections, recognize

            def recognize(frame: np.ndarray) -> object:  # inside recognize_logged: a failure is no unlock
                return takes_found.found(frame, [mirrored(det, width) for det in given] if mirror else given)

        # embeddings only from this process's own recogniser (an answer's are never believed)
        trusted = isinstance(self.recognize, InProcessRecognition) and self.recognize.keeps_embeddings
        faces = recognize_logged(recognize, shown, keep_embeddings=trusted)
        if faces is None:
            self.stats.recognition_errors += 1
            return None
        return [unmirrored(face, image.shape[1]) for face in faces] if self.settings.mirror else faces

    def _track(self, frame: Frame, image: np.ndarray, faces: list[Face],
               detections: list[Detection] | None) -> list[Track]:
        """The track of each recognised face: the gate's detection it overlaps (this frame's tracks), else
        a track of its own box (a face recognition found and the gate did not)."""
        by_detection = {id(track.last.detection): track for track in self.tracker.active
                        if track.last.seq == frame.seq}
        matched: list[Track | None] = [None] * len(faces)
        if detections:
            pairs = sorted(((iou(face.box, det.box), i, j) for i, face in enumerate(faces)
                            for j, det in enumerate(detections)), reverse=True)
            used: set[int] = set()
            for overlap, i, j in pairs:
                if overlap < MATCH_IOU:
                    break
                if matched[i] is None and j not in used and id(detections[j]) in by_detection:
                    matched[i] = by_detection[id(detections[j])]
                    used.add(j)
            for j, det in enumerate(detections):  # a face recognition did not find or name is not known to
                if j not in used and id(det) in by_detection:  # be the one recognised before (liveness)
                    unnamed = by_detection[id(det)]
                    unnamed.mark_break(unnamed.last.t)
        leftovers = [i for i, track in enumerate(matched) if track is None]
        if leftovers:
            boxes = [Detection(box=faces[i].box, score=1.0) for i in leftovers]
            # with the gate this frame's update has been made; without it this is the frame's update
            new_tracks = self.tracker.update(frame.received, frame.seq, boxes, image,
                                             more=detections is not None)
            for i, new in zip(leftovers, new_tracks, strict=True):
                matched[i] = new
        result = []
        for face, found in zip(faces, matched, strict=True):
            assert found is not None
            embedding = np.asarray(face.embedding, np.float32) if face.embedding else None
            result.append(self.tracker.recognised(found, Recognition(face.label, face.confidence, embedding),
                                                  self.policy.threshold))
        return result

    def _unlock(self, decision: Decision, image: np.ndarray, faces: list[Face], frame: Frame,
                liveness: dict[str, Any] | None = None) -> bool:
        try:
            self.door(decision)
        except Exception as err:  # door unreachable or refused: stays locked; retry after a pause
            self.stats.door_errors += 1
            self._door_ready_at = self.clock() + self.settings.door_retry
            logger.error("Unlock request failed, the door stays locked: %s: %s", type(err).__name__, err)
            return False
        logger.info("Door unlocked")
        logger.info("Unlocked for %s (confidence %.3f over %d frame(s) of track %s)",
                    decision.label, decision.confidence, decision.frames, decision.track)
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
            "track": decision.track,
            "captured": frame.captured,
            **(liveness or {}),  # "off", or "live" with the cues and the seconds the decision waited for it
            **({"frame_dir": folder.name} if folder is not None else {}),  # under <log-path>/unlock-frames/
        })
        return True

    def _save_unlock_frame(self, image: np.ndarray, faces: list[Face], decision: Decision,
                           frame: Frame) -> Path | None:
        if self.unlock_log is None:
            return None
        try:
            folder = self.unlock_log.save(image, faces, decision, {"captured": frame.captured,
                                                                   "track": decision.track})
        except Exception as err:  # OSError on a full disk, above all: the door is open already
            self.stats.frames_not_saved += 1
            self._saving.failed(err)
            return None
        self._saving.ok()
        logger.info("Unlock frame saved to %s", folder)
        return folder

    def _publish(self, frame: Frame, image: np.ndarray | None, faces: list[Face], tracks: list[Track],
                 analysed: bool) -> None:
        if self.on_analysis is None:
            return
        if image is None:  # an unchanged empty frame: the analysis says "nobody", its picture is not needed
            image = np.zeros((0, 0, 3), np.uint8)
        analysis = Analysis.of(frame, image, faces, tracks, analysed, self.policy.threshold)
        try:
            self.on_analysis(analysis)
        except Exception as err:  # the live view and the collector never stop the door's work
            self._analysis_failed.failed(err)
        else:
            self._analysis_failed.ok()

    def _report(self, faces: list[Face], tracks: list[Track]) -> None:
        known: dict[str, tuple[float, int]] = {}
        for face, track in zip(faces, tracks, strict=True):
            if face.confidence > max(self.policy.threshold, known.get(face.label, (-1.0, 0))[0]):
                known[face.label] = (face.confidence, track.id)
        for label, (confidence, track_id) in known.items():
            self._emit_throttled("recognised", label, {
                "person": label, "confidence": confidence, "frames": self.policy.evidence(label, track_id),
                "needed": self.policy.min_frames, "track": track_id,
            })
        if faces and not known:
            best = max(range(len(faces)), key=lambda index: faces[index].confidence)
            self._emit_throttled("refused-unknown", "", {
                "faces": len(faces), "best_label": faces[best].label,
                "best_confidence": faces[best].confidence, "track": tracks[best].id,
            })

    def _report_unusable(self, gated: GateResult, tracks: list[Track]) -> None:
        if not gated.unusable:
            return
        self.stats.faces_unusable += len(gated.unusable)
        for item, track in zip(gated.unusable, tracks[len(gated.faces):], strict=True):
            # a face recognition cannot see is not known to be the one recognised before (liveness)
            track.mark_break(track.last.t)
            size = round(min(item.detection.width, item.detection.height))
            if self._emit_throttled("face-unusable", str(track.id), {
                    "reason": item.reason, "size": size, "track": track.id}):
                logger.info("A face is in view but %s to recognise (%d px, track %d)", item.reason, size,
                            track.id)

    def _emit_throttled(self, kind: str, key: str, payload: dict[str, Any]) -> bool:
        now = self.clock()
        last = self._last_event.get((kind, key))
        if last is not None and now - last < self.settings.event_interval:
            return False
        if len(self._last_event) > 1000:  # keys per track: forget the ones past their interval
            self._last_event = {k: t for k, t in self._last_event.items()
                                if now - t < self.settings.event_interval}
        self._last_event[(kind, key)] = now
        self.events.emit({"event": kind, "time": current_timestamp(), **payload})
        return True


def iso_time(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def mirrored(detection: Detection, width: int) -> Detection:
    """``detection`` as found in the mirrored image: the box flipped, the landmarks flipped and their left
    and right swapped (SCRFD's order: the eye and mouth corner on the image's left come first)."""
    left, top, right, bottom = detection.box
    landmarks = None
    if detection.landmarks is not None:
        landmarks = np.array(detection.landmarks[[1, 0, 2, 4, 3]], dtype=np.float32)
        landmarks[:, 0] = width - landmarks[:, 0]
    return Detection(box=(width - right, top, width - left, bottom), score=detection.score,
                     landmarks=landmarks)


def unmirrored(face: Face, width: int) -> Face:
    """``face`` found in the mirrored image, with its box in the unmirrored one's pixels."""
    box = face.bounding_box
    flipped = BoundingBox(left=width - box.right, top=box.top, right=width - box.left, bottom=box.bottom)
    return face.model_copy(update={"bounding_box": flipped})
