"""The engine with its detection gate (fake finder, manual clock): every frame gated, recognition at most
--max-fps, K frames of ONE face track, boxes as the camera saw them, unusable faces reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smartlock.engine.analysis import Analysis
from smartlock.engine.engine import Engine, LoopSettings
from smartlock.engine.gate import Gate
from smartlock.engine.policy import UnlockPolicy
from smartlock.engine.sinks import UnlockLog
from smartlock.engine.tracks import Detection
from tests.engine.fakes import ClockStop, EndlessFrames, FakeDoor, ListSink, ScriptedRecognizer, api_face
from tests.support import ManualClock

WIDTH = 160  # EndlessFrames are 160x120


class ScriptedFinder:
    """Finds the boxes of a script, one entry per call (repeating the last)."""

    def __init__(self, *script: list[tuple[float, float, float, float]]) -> None:
        self.script = list(script)
        self.calls = 0

    def __call__(self, image: np.ndarray) -> list[Detection]:
        boxes = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return [Detection(box=box, score=0.9) for box in boxes]


def mirrored(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """Where recognition (which sees the frame mirrored) reports ``box``."""
    return (WIDTH - box[2], box[1], WIDTH - box[0], box[3])


LEFT = (10.0, 20.0, 60.0, 70.0)
RIGHT = (100.0, 20.0, 150.0, 70.0)


def make(tmp_path: Path, finder: ScriptedFinder, recognizer: ScriptedRecognizer, k: int = 2,
         analyses: list[Analysis] | None = None) -> tuple[Engine, FakeDoor, ListSink, ManualClock]:
    clock = ManualClock()
    door, sink = FakeDoor(), ListSink()
    gate = Gate(finder, min_face=20, min_sharpness=0)
    engine = Engine(EndlessFrames(clock), recognizer, door, UnlockPolicy(0.8, k, 1.5), gate=gate,
                    unlock_log=UnlockLog(tmp_path, 0.8), events=sink,
                    settings=LoopSettings(fps=2, max_fps=10, block_time=6), clock=clock,
                    on_analysis=analyses.append if analyses is not None else None)
    return engine, door, sink, clock


def run(engine: Engine, clock: ManualClock, frames: int, frame_interval: float = 1 / 25) -> None:
    """Feed ``frames`` camera frames, ``frame_interval`` apart (the camera's rate); after an unlock the
    engine skips frames for its block time."""
    stop = ClockStop(clock)
    for _ in range(frames):
        engine.step(stop)
        clock.advance(frame_interval)


def test_every_frame_is_gated_and_recognition_runs_at_most_max_fps(tmp_path: Path) -> None:
    finder = ScriptedFinder([LEFT])
    recognizer = ScriptedRecognizer([api_face("carol", 0.3, mirrored(LEFT))])
    engine, door, _, clock = make(tmp_path, finder, recognizer)
    run(engine, clock, 50)  # 2 s of a 25 fps camera
    assert finder.calls == 50 and engine.stats.frames_seen == 50
    assert 18 <= recognizer.calls <= 21  # 10 a second
    assert engine.stats.frames_gated == 50 - recognizer.calls and door.calls == []


def test_frames_without_a_face_never_reach_recognition(tmp_path: Path) -> None:
    finder = ScriptedFinder([])
    recognizer = ScriptedRecognizer([api_face("alice", 0.99)])
    engine, door, _, clock = make(tmp_path, finder, recognizer)
    run(engine, clock, 30)
    assert recognizer.calls == 0 and engine.stats.frames_without_face == 30 and door.calls == []


def test_the_same_track_in_k_frames_unlocks_and_events_carry_the_track(tmp_path: Path) -> None:
    finder = ScriptedFinder([LEFT])
    recognizer = ScriptedRecognizer([api_face("alice", 0.93, mirrored(LEFT))])
    engine, door, sink, clock = make(tmp_path, finder, recognizer)
    run(engine, clock, 10)
    assert door.opened == [("alice", 0.93)] and recognizer.calls == 2
    decision = engine.stats.unlocked[0]
    assert decision.track is not None and decision.frames == 2
    unlocked = [event for event in sink.events if event["event"] == "unlocked"]
    assert unlocked[0]["track"] == decision.track
    recognised = [event for event in sink.events if event["event"] == "recognised"]
    assert recognised[0]["track"] == decision.track


def test_two_tracks_with_one_lucky_frame_each_do_not_add_up(tmp_path: Path) -> None:
    """A face appears on the left, is gone, another appears on the right: one frame each above the
    threshold for "alice" — K = 2 frames of any face would open the door; per track it stays shut."""
    finder = ScriptedFinder([LEFT], [], [], [], [RIGHT], [])
    recognizer = ScriptedRecognizer([api_face("alice", 0.9, mirrored(LEFT))],
                                    [api_face("alice", 0.9, mirrored(RIGHT))])
    engine, door, _, clock = make(tmp_path, finder, recognizer)
    run(engine, clock, 12, frame_interval=0.11)
    assert recognizer.calls == 2 and door.calls == []
    assert engine.policy.evidence("alice") == 1


def test_boxes_are_stored_and_published_as_the_camera_saw_them(tmp_path: Path) -> None:
    analyses: list[Analysis] = []
    finder = ScriptedFinder([LEFT])
    recognizer = ScriptedRecognizer([api_face("alice", 0.93, mirrored(LEFT))])
    engine, door, _, clock = make(tmp_path, finder, recognizer, analyses=analyses)
    run(engine, clock, 6)
    assert door.opened
    analysed = [analysis for analysis in analyses if analysis.analysed]
    assert analysed and all(a.faces[0].box == LEFT and a.faces[0].label == "alice" for a in analysed)
    assert analysed[0].recognised[0].box == LEFT  # unmirrored for the collector too
    gated_only = [analysis for analysis in analyses if not analysis.analysed]
    assert gated_only and gated_only[-1].faces[0].label == "alice"  # the track's latest recognition
    folder = next(p for p in (tmp_path / "unlock-frames").iterdir() if not p.name.startswith("."))
    import json

    faces = json.loads((folder / "faces.json").read_text())
    assert tuple(faces["faces"][0]["bounding_box"].values()) == LEFT and faces["track"] is not None


def test_a_face_too_small_to_recognise_is_reported_not_recognised(tmp_path: Path) -> None:
    tiny = (10.0, 10.0, 22.0, 22.0)
    finder = ScriptedFinder([tiny])
    recognizer = ScriptedRecognizer([api_face("alice", 0.99)])
    engine, door, sink, clock = make(tmp_path, finder, recognizer)
    run(engine, clock, 10)
    assert recognizer.calls == 0 and door.calls == []
    unusable = [event for event in sink.events if event["event"] == "face-unusable"]
    assert unusable and unusable[0]["reason"] == "too small" and unusable[0]["size"] == 12
    assert engine.stats.faces_unusable == 10


def test_a_face_recognition_finds_where_the_gate_saw_none_gets_a_track_of_its_own(tmp_path: Path) -> None:
    finder = ScriptedFinder([LEFT])
    # recognition reports a second face the gate missed: it is tracked on its own box
    recognizer = ScriptedRecognizer([api_face("bob", 0.4, mirrored(LEFT)),
                                     api_face("alice", 0.95, mirrored(RIGHT))])
    engine, door, _, clock = make(tmp_path, finder, recognizer)
    run(engine, clock, 6)
    assert door.opened == [("alice", 0.95)]
    tracks = {track.id: track for track in engine.tracker.active}
    assert len(tracks) == 2 and engine.stats.unlocked[0].track in tracks


def test_frames_analysed_0_8_s_apart_still_add_up_on_one_track(tmp_path: Path) -> None:
    """The seed's pre-filter path (or a slow recogniser): frames 0.8 s apart, longer than a track's gap."""
    from tests.engine.fakes import always

    clock = ManualClock()
    door = FakeDoor()
    recognizer = ScriptedRecognizer([api_face("alice", 0.93, mirrored(LEFT))])
    engine = Engine(EndlessFrames(clock), recognizer, door, UnlockPolicy(0.8, 2, 1.5), detector=always(True),
                    settings=LoopSettings(fps=1.25, max_fps=1.25, block_time=6), clock=clock)
    stop = ClockStop(clock)
    for _ in range(40):
        engine.step(stop)
        if door.opened:
            break
    assert door.opened == [("alice", 0.93)] and recognizer.calls == 2


class FoundRecognizer(ScriptedRecognizer):
    """A recogniser that can embed the gate's faces (as the in-process one): records what it was given."""

    def __init__(self, label: str) -> None:
        super().__init__([])
        self.label = label
        self.given: list[tuple[np.ndarray, list[Detection]]] = []

    def found(self, image: np.ndarray, detections: list[Detection]) -> list[dict]:
        self.given.append((image, list(detections)))
        return [api_face(self.label, 0.99, det.box) for det in detections]


def test_a_recogniser_that_takes_the_gates_faces_gets_them_mirrored_and_never_detects_again(
        tmp_path: Path) -> None:
    landmarks = np.array([[20, 35], [45, 36], [33, 48], [22, 60], [44, 61]], np.float32)

    class LandmarkFinder(ScriptedFinder):
        def __call__(self, image: np.ndarray) -> list[Detection]:
            self.calls += 1
            return [Detection(box=LEFT, score=0.9, landmarks=landmarks)]

    recognizer = FoundRecognizer("alice")
    engine, door, _, clock = make(tmp_path, LandmarkFinder(), recognizer)
    run(engine, clock, 10)
    assert recognizer.calls == 0 and recognizer.given  # never asked to find faces itself
    image, detections = recognizer.given[0]
    assert image.shape[1] == WIDTH and len(detections) == 1
    seen = detections[0]
    assert seen.box == mirrored(LEFT)  # the frame it gets is mirrored, so are the boxes ...
    assert seen.landmarks is not None
    # ... and the landmarks, whose left and right swap: the eye on the image's left comes first again
    np.testing.assert_allclose(seen.landmarks[:, 0], WIDTH - landmarks[[1, 0, 2, 4, 3], 0])
    np.testing.assert_allclose(seen.landmarks[:, 1], landmarks[[1, 0, 2, 4, 3], 1])
    assert seen.landmarks[0, 0] < seen.landmarks[1, 0] and seen.landmarks[3, 0] < seen.landmarks[4, 0]
    assert [label for label, _ in door.calls] == ["alice"]  # the faces it named are the gate's track
    assert engine.tracker.active[0].history[-1].box == LEFT


def test_faces_without_landmarks_are_recognised_from_the_whole_frame(tmp_path: Path) -> None:
    recognizer = FoundRecognizer("alice")
    recognizer.answers = [[api_face("alice", 0.99, mirrored(LEFT))]]
    engine, door, _, clock = make(tmp_path, ScriptedFinder([LEFT]), recognizer)  # Haar-like: no landmarks
    run(engine, clock, 10)
    assert recognizer.calls >= 2 and recognizer.given == []
    assert [label for label, _ in door.calls] == ["alice"]


def test_embeddings_in_an_answer_never_reach_the_tracks_whatever_the_recogniser_says(tmp_path: Path) -> None:
    """Only the engine's own in-process recogniser (assembly.InProcessRecognition) is trusted with
    embeddings: an answer carrying them, from a recogniser that says it keeps them, is stripped."""
    answer = {**api_face("alice", 0.5, mirrored(LEFT)), "embedding": [1.0, 0.0, 0.0, 0.0]}

    class Claims(ScriptedRecognizer):
        keeps_embeddings = True

    engine, _, _, clock = make(tmp_path, ScriptedFinder([LEFT]), Claims([answer]))
    run(engine, clock, 10)
    (track,) = engine.tracker.active
    recognised = [obs.recognition for obs in track.history if obs.recognition is not None]
    assert recognised and all(r.embedding is None and not r.same_face for r in recognised)
