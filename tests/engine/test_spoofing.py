"""Liveness in the unlock rule (a judge that says what a script says) and the spoof lockout's file."""

from __future__ import annotations

import json
import stat
from collections import deque
from pathlib import Path

import pytest

from smartlock.engine.engine import Engine, LoopSettings
from smartlock.engine.gate import Gate
from smartlock.engine.policy import UnlockPolicy
from smartlock.engine.spoofing import LOCKOUT_FILE, LivenessCheck, SpoofLockout, lift_lockout
from smartlock.engine.tracks import Detection, Observation, Track
from tests.engine.fakes import ClockStop, EndlessFrames, FakeDoor, ListSink, ScriptedRecognizer, api_face
from tests.support import ManualClock

BOX = (10.0, 20.0, 60.0, 70.0)
MIRRORED = (100.0, 20.0, 150.0, 70.0)  # where recognition, seeing the 160 px frame mirrored, reports BOX


class Verdict:
    def __init__(self, state: str) -> None:
        self.state = state

    def as_dict(self) -> dict:
        return {"state": self.state, "decided_by": ["motion"] if self.state == "attack" else [],
                "cues": [{"name": "motion", "decision": "attack", "reason": "no motion in 1.0 s"}]}


class ScriptedJudge:
    def __init__(self, *states: str) -> None:
        self.states = list(states)
        self.calls = 0

    def judge(self, observations: list[Observation]) -> Verdict:
        state = self.states[min(self.calls, len(self.states) - 1)]
        self.calls += 1
        return Verdict(state)


def engine(tmp_path: Path, judge: object, lockout: SpoofLockout | None = None,
           timeout: float = 3.0, door_fails: int = 0) -> tuple[Engine, FakeDoor, ListSink, ManualClock]:
    clock, door, sink = ManualClock(), FakeDoor(fail=door_fails), ListSink()
    gate = Gate(lambda image: [Detection(box=BOX, score=0.9)], min_face=20, min_sharpness=0)
    return Engine(EndlessFrames(clock), ScriptedRecognizer([api_face("alice", 0.95, MIRRORED)]), door,
                  UnlockPolicy(0.8, 2, 1.5), gate=gate, events=sink, clock=clock,
                  settings=LoopSettings(fps=2, max_fps=10, block_time=6),
                  liveness=LivenessCheck(judge, timeout), lockout=lockout), door, sink, clock


def run(eng: Engine, clock: ManualClock, frames: int) -> None:
    stop = ClockStop(clock)
    for _ in range(frames):
        eng.step(stop)
        clock.advance(0.04)


def test_a_live_track_unlocks(tmp_path: Path) -> None:
    judge = ScriptedJudge("undecided", "undecided", "undecided", "undecided", "live")
    eng, door, sink, clock = engine(tmp_path, judge)
    run(eng, clock, 20)
    assert door.opened == [("alice", 0.95)] and eng.stats.liveness_waits >= 1
    (unlocked,) = [e for e in sink.events if e["event"] == "unlocked"]
    # the decision was held for liveness from its first frame to the verdict: the event says how long
    assert unlocked["liveness"] == "live" and unlocked["liveness_wait"] >= 0.04


def test_the_wait_counts_from_the_first_decision_across_a_door_failure(tmp_path: Path) -> None:
    """Live by the first decision, the door fails, the decision comes again: the unlock event's wait is
    from the first check (the decision was held that long), not 0."""
    eng, door, sink, clock = engine(tmp_path, ScriptedJudge("live"), door_fails=1)
    run(eng, clock, 200)
    unlocked = next(e for e in sink.events if e["event"] == "unlocked")
    assert door.calls[:2] == [("alice", 0.95)] * 2 and door.opened[0] == ("alice", 0.95)
    assert unlocked["liveness_wait"] >= eng.settings.door_retry


def test_a_track_live_by_its_first_decision_waited_for_nothing(tmp_path: Path) -> None:
    eng, door, sink, clock = engine(tmp_path, ScriptedJudge("live"))
    run(eng, clock, 20)
    (unlocked,) = [e for e in sink.events if e["event"] == "unlocked"]
    assert door.opened == [("alice", 0.95)] and unlocked["liveness_wait"] == 0.0


def test_the_first_decisive_verdict_is_kept() -> None:
    """Judged live on a frame between two decisions (a viewpoint change), undecided afterwards: the check at
    the decision gives the verdict already found, without judging again."""
    track = Track(id=1, started=0.0, history=deque(observation(i, 0.95 if i % 3 == 0 else None)
                                                   for i in range(10)))
    judge = ScriptedJudge("live", "undecided")
    check = LivenessCheck(judge)
    check.observe(track)
    check.observe(track)  # kept: not judged again
    track.history.extend([observation(10), observation(11), observation(12, 0.9)])
    assert check.check(track, now=1.0).outcome == "live" and judge.calls == 1


class DepthOfWhatItSees:
    """Stands in for the depth cues: "live" when the frames it is given include the live stranger's (their
    head next to the photo's landmarks is parallax), "attack" when they are the flat photo's alone."""

    def __init__(self) -> None:
        self.seen: list[list[Observation]] = []

    def judge(self, observations: list[Observation]) -> Verdict:
        self.seen.append(list(observations))
        stranger = any(obs.recognition is not None and obs.recognition.confidence < 0.5
                       for obs in observations)
        return Verdict("live" if stranger else "attack")


def test_a_live_stranger_raising_a_photo_is_judged_on_the_photo_frames_only(tmp_path: Path) -> None:
    """The same box all along (no embeddings to split the track: the engine over the HTTP API): a stranger
    recognised as nobody, then a photo of alice in front of their face. Only the frames from the first
    recognition as alice on are judged: the photo's, flat."""
    judge = DepthOfWhatItSees()
    eng, door, sink, clock = engine(tmp_path, judge)
    eng.recognize = ScriptedRecognizer(*([[api_face("alice", 0.2, MIRRORED)]] * 6),
                                       [api_face("alice", 0.95, MIRRORED)])
    run(eng, clock, 40)
    assert door.calls == [] and judge.seen and judge.seen[0]
    first = judge.seen[0][0]  # the first frame judged is the first recognised as alice
    assert first.recognition is not None and first.recognition.confidence > 0.8
    (event,) = [e for e in sink.events if e["event"] == "refused-spoof"]
    assert event["reason"] == "attack"


def test_a_stranger_who_lowers_the_photo_is_never_judged(tmp_path: Path) -> None:
    """The photo is recognised as alice until the decision waits for liveness, then lowered: the stranger's
    face stays in the box (no embedding to split the track). Frames after the last confident recognition,
    and the run broken by the stranger's own recognition, are never judged; the door stays shut."""
    swapped_at: list[float] = []

    class FlatUntilTheSwap:
        def __init__(self) -> None:
            self.seen: list[Observation] = []

        def judge(self, observations: list[Observation]) -> Verdict:
            self.seen += observations
            stranger = bool(swapped_at) and any(obs.t >= swapped_at[0] for obs in observations)
            return Verdict("live" if stranger else "undecided")

    judge = FlatUntilTheSwap()
    eng, door, _, clock = engine(tmp_path, judge, timeout=30)
    stop = ClockStop(clock)
    while eng.stats.liveness_waits == 0:
        eng.step(stop)
        clock.advance(0.04)
    swapped_at.append(clock())
    eng.recognize = ScriptedRecognizer([api_face("alice", 0.2, MIRRORED)])  # the stranger's own face
    run(eng, clock, 40)
    assert door.calls == []
    assert judge.seen and all(obs.t < swapped_at[0] for obs in judge.seen)


def test_a_stranger_who_blurs_their_face_between_recognitions_is_never_judged(tmp_path: Path) -> None:
    """The photo is recognised; lowered, the stranger's face stays in the box but blurred (the gate calls it
    unusable: recognition never sees it); the photo goes up again and is recognised. The blurred frames
    break the run: the judge never reads them, the door stays shut."""
    blurred: list[tuple[float, float]] = []

    class LiveIfItSeesTheStranger:
        def __init__(self) -> None:
            self.seen: list[Observation] = []

        def judge(self, observations: list[Observation]) -> Verdict:
            self.seen += observations
            stranger = any(a <= obs.t < b for obs in observations for a, b in blurred)
            return Verdict("live" if stranger else "undecided")

    judge = LiveIfItSeesTheStranger()
    eng, door, _, clock = engine(tmp_path, judge, timeout=30)
    run(eng, clock, 4)  # the photo: recognised as alice
    start = clock()
    assert eng.gate is not None
    eng.gate.min_sharpness = 1e9  # the stranger: every face blurred
    run(eng, clock, 15)
    blurred.append((start, clock()))
    assert eng.stats.faces_unusable >= 10
    eng.gate.min_sharpness = 0  # the photo again
    run(eng, clock, 30)
    assert eng.stats.liveness_waits > 0 and door.calls == []
    assert judge.seen and not any(start <= obs.t < blurred[0][1] for obs in judge.seen)


class LiveIfItSees:
    """Stands in for the depth cues: "live" when it is given a frame of the stranger's (times in
    ``windows``), else undecided."""

    def __init__(self) -> None:
        self.windows: list[tuple[float, float]] = []
        self.seen: list[Observation] = []

    def judge(self, observations: list[Observation]) -> Verdict:
        self.seen += observations
        stranger = any(a <= obs.t < b for obs in observations for a, b in self.windows)
        return Verdict("live" if stranger else "undecided")


@pytest.mark.parametrize("answer", ["no face", "failure"])
def test_a_face_recognition_does_not_name_breaks_the_run(tmp_path: Path, answer: str) -> None:
    """Between two recognitions of the photo, the stranger turns away: the gate still finds a usable face
    but recognition finds none (or fails). Those frames break the run; the judge never reads them."""
    judge = LiveIfItSees()
    eng, door, _, clock = engine(tmp_path, judge, timeout=30)
    run(eng, clock, 4)  # the photo: recognised as alice
    start = clock()
    eng.recognize = ScriptedRecognizer([] if answer == "no face" else RuntimeError("recognition down"))
    run(eng, clock, 15)
    judge.windows.append((start, clock()))
    eng.recognize = ScriptedRecognizer([api_face("alice", 0.95, MIRRORED)])  # the photo again
    run(eng, clock, 30)
    assert eng.stats.liveness_waits > 0 and door.calls == []
    assert judge.seen and not any(start <= obs.t < judge.windows[0][1] for obs in judge.seen)


def test_a_break_recorded_on_the_track_voids_a_live_verdict() -> None:
    """The break itself has left the 48-frame history (the tracker keeps it on the track)."""
    track = Track(id=1, started=0.0, history=deque(observation(i, 0.95 if i % 3 == 0 else None)
                                                   for i in range(10)))
    judge = ScriptedJudge("live", "undecided")
    check = LivenessCheck(judge)
    check.observe(track)
    track.broken_at = 0.5  # after the run's start, no trace of it in the history
    track.history.extend([observation(20, 0.95), observation(21, 0.95)])
    assert check.check(track, now=1.0).outcome == "wait" and judge.calls == 2
    assert [obs.seq for obs in check.subject(track)] == [20, 21]


def test_a_short_miss_holds_a_live_verdict_until_the_next_recognition_resolves_it() -> None:
    """Judged live, then the gate missed the face for a frame (``Track.missed_at``): until a recognition
    says whose face is in the box, the track is not live, nothing is judged and the judged run starts after
    the miss; healed, the kept verdict stands; made a break, it is dropped and the new run judged."""
    def judged_then_missed() -> tuple[Track, LivenessCheck, ScriptedJudge]:
        track = Track(id=1, started=0.0, history=deque(observation(i, 0.95 if i % 3 == 0 else None)
                                                       for i in range(10)))
        judge = ScriptedJudge("live", "undecided")
        check = LivenessCheck(judge)
        check.observe(track)
        track.missed_at = 9 / 24
        track.history.append(observation(11))
        return track, check, judge

    track, check, judge = judged_then_missed()
    check.observe(track)
    assert judge.calls == 1 and check.subject(track) == []
    assert check.check(track, now=1.0).outcome == "wait"
    track.missed_at = None  # the next recognition was the run's face (Tracker.recognised)
    track.history.append(observation(12, 0.95))
    assert check.check(track, now=1.1).outcome == "live"
    assert [obs.seq for obs in check.subject(track)] == [*range(10), 11, 12]

    track, check, judge = judged_then_missed()
    track.missed_at, track.broken_at = None, 9 / 24  # it was not
    track.history.append(observation(12, 0.95))
    assert check.check(track, now=1.1).outcome == "wait" and judge.calls == 2
    assert [obs.seq for obs in check.subject(track)] == [12]


def observation(seq: int, confidence: float | None = None) -> Observation:
    from smartlock.engine.tracks import Recognition

    return Observation(t=seq / 24, seq=seq, detection=Detection(BOX, 0.9), frame_size=(160, 120),
                       recognition=None if confidence is None else Recognition("alice", confidence))


def test_the_subject_is_the_latest_run_of_confident_recognitions() -> None:
    marks = {2: 0.3, 5: 0.9, 8: 0.95, 11: 0.85}  # seq -> recognition confidence; others: gate frames only
    track = Track(id=1, started=0.0, history=deque(observation(i, marks.get(i)) for i in range(13)))
    check = LivenessCheck(ScriptedJudge("live"))
    assert [obs.seq for obs in check.subject(track)] == list(range(5, 12))  # 12: after the last one
    track.history.append(observation(13, 0.4))  # someone else in the box now: the run is broken
    assert check.subject(track) == []
    track.history.append(observation(14, 0.9))
    assert [obs.seq for obs in check.subject(track)] == [14]
    assert len(LivenessCheck(ScriptedJudge("live"), threshold=0.2).subject(track)) == 15 - 2


def test_the_runs_own_face_below_the_threshold_keeps_the_run_judged() -> None:
    """A recognition the tracker found to be the run's own face (``same_face``) is no break; the same
    confidence without it is."""
    from dataclasses import replace

    marks = {2: 0.9, 5: 0.4, 8: 0.95}
    history = [observation(i, marks.get(i)) for i in range(10)]
    check = LivenessCheck(ScriptedJudge("live"))
    assert [obs.seq for obs in check.subject(Track(1, 0.0, deque(history)))] == [8]
    recognition = history[5].recognition
    assert recognition is not None
    history[5] = replace(history[5], recognition=replace(recognition, same_face=True))
    assert [obs.seq for obs in check.subject(Track(1, 0.0, deque(history)))] == list(range(2, 9))


def test_the_runs_own_face_after_its_last_confident_recognition_is_judged_too() -> None:
    """Frames up to a later recognition found to be the run's face (``same_face``) are known to show it:
    the judge reads them; frames after the run's last recognition (gate only) are not known, and a
    ``same_face`` mark before the run's first confident recognition does not start a run."""
    from dataclasses import replace

    from smartlock.engine.tracks import Recognition

    def same_face(obs: Observation) -> Observation:
        return replace(obs, recognition=Recognition("alice", 0.3, same_face=True))

    history = [observation(i, {3: 0.9, 5: 0.95}.get(i)) for i in range(12)]
    history[1], history[9] = same_face(history[1]), same_face(history[9])
    check = LivenessCheck(ScriptedJudge("live"))
    assert [obs.seq for obs in check.subject(Track(1, 0.0, deque(history)))] == list(range(3, 10))
    history[9] = observation(9, 0.3)  # not the run's face: a break
    assert check.subject(Track(1, 0.0, deque(history))) == []


def test_a_live_verdict_does_not_outlive_its_run() -> None:
    """alice was judged live; someone below the threshold took her place in the box, then a photo of alice
    was recognised: the kept verdict is dropped and the photo's own run is judged."""
    track = Track(id=1, started=0.0, history=deque(observation(i, 0.95 if i % 3 == 0 else None)
                                                   for i in range(10)))
    judge = ScriptedJudge("live", "attack")
    check = LivenessCheck(judge)
    check.observe(track)
    assert check.check(track, now=1.0).outcome == "live"
    track.history.extend([observation(10, 0.3), observation(11), observation(12, 0.95),
                          observation(13, 0.95)])
    result = check.check(track, now=2.0)
    assert result.outcome == "attack" and judge.calls == 2


def test_an_attack_is_refused_once_and_never_unlocks(tmp_path: Path) -> None:
    judge = ScriptedJudge("attack", "live")  # once refused, a track is not judged again
    eng, door, sink, clock = engine(tmp_path, judge)
    run(eng, clock, 40)
    assert door.calls == [] and eng.stats.refused_spoof == 1 and judge.calls == 1
    (event,) = [e for e in sink.events if e["event"] == "refused-spoof"]
    assert event["reason"] == "attack" and event["decided_by"] == ["motion"] and event["person"] == "alice"
    assert event["cues"][0]["reason"] == "no motion in 1.0 s"


def test_undecided_past_the_timeout_is_refused(tmp_path: Path) -> None:
    eng, door, sink, clock = engine(tmp_path, ScriptedJudge("undecided"), timeout=0.5)
    run(eng, clock, 40)
    assert door.calls == []
    (event,) = [e for e in sink.events if e["event"] == "refused-spoof"]
    assert event["reason"] == "timeout"


def test_repeated_attacks_pause_face_unlock_and_the_pause_survives_a_restart(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    path = tmp_path / LOCKOUT_FILE
    lockout = SpoofLockout(path, limit=3, window=600, pause=600, clock=lambda: now[0])
    assert lockout.record_attack() is None and lockout.record_attack() is None
    until = lockout.record_attack()
    assert until == now[0] + 600 and lockout.paused_until() == until
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = SpoofLockout(path, limit=3, clock=lambda: now[0] + 60)  # the engine restarted
    assert again.paused_until() == until
    # while paused even a live track is refused, with an event
    eng, door, sink, clock = engine(tmp_path, ScriptedJudge("live"), lockout=again)
    run(eng, clock, 10)
    assert door.calls == [] and eng.stats.refused_lockout >= 1
    assert any(e["event"] == "refused-lockout" for e in sink.events)
    # an admin lifts it: the engine sees the file change at its next decision
    assert lift_lockout(tmp_path, by="admin") is True
    eng.tracker.reset()
    run(eng, clock, 10)
    assert door.opened == [("alice", 0.95)]
    assert json.loads(path.read_text())["lifted_by"] == "admin"


def test_attacks_far_apart_do_not_pause(tmp_path: Path) -> None:
    now = [1000.0]
    lockout = SpoofLockout(tmp_path / LOCKOUT_FILE, limit=3, window=600, clock=lambda: now[0])
    for _ in range(5):
        assert lockout.record_attack() is None
        now[0] += 400
    assert lockout.paused_until() is None


def test_a_corrupt_lockout_file_keeps_face_unlock_paused(tmp_path: Path) -> None:
    path = tmp_path / LOCKOUT_FILE
    path.write_text("{not json")
    assert SpoofLockout(path).paused_until() is not None


def test_the_attack_that_starts_a_pause_is_in_the_event(tmp_path: Path) -> None:
    lockout = SpoofLockout(tmp_path / LOCKOUT_FILE, limit=1)
    eng, door, sink, clock = engine(tmp_path, ScriptedJudge("attack"), lockout=lockout)
    run(eng, clock, 10)
    kinds = [e["event"] for e in sink.events]
    assert "refused-spoof" in kinds and "lockout" in kinds and door.calls == []
    spoof = next(e for e in sink.events if e["event"] == "refused-spoof")
    assert "lockout_until" in spoof


def test_track_state_is_forgotten_when_the_track_ends() -> None:
    check = LivenessCheck(ScriptedJudge("attack"))
    track = Track(id=1, started=0.0, history=deque())
    assert check.check(track, 0.0).outcome == "attack"
    assert check.check(track, 0.1).outcome == "refused"
    check.forget([track])
    assert check.check(track, 0.2).outcome == "attack"


def test_a_recognised_track_that_leaves_undecided_is_reported_not_counted(tmp_path: Path) -> None:
    lockout = SpoofLockout(tmp_path / LOCKOUT_FILE, limit=1)
    eng, door, sink, clock = engine(tmp_path, ScriptedJudge("undecided"), lockout=lockout, timeout=10)
    run(eng, clock, 10)  # recognised, waiting to be judged live
    eng.gate.finder = lambda image: []  # the face leaves
    clock.advance(1.0)
    run(eng, clock, 5)
    (event,) = [e for e in sink.events if e["event"] == "refused-spoof"]
    assert event["reason"] == "undecided" and event["person"] == "alice" and door.calls == []
    assert lockout.paused_until() is None  # someone walking past is not an attack


@pytest.mark.parametrize(("pattern", "fps"), [("PSSBB", 24.0), ("PBS", 24.0), ("PBSS", 39.9)])
def test_a_stranger_shown_between_a_photos_recognitions_and_a_miss_is_never_judged(pattern: str,
                                                                                    fps: float) -> None:
    """In-process (embeddings, so short misses heal): a photo of alice recognised, a live stranger in the
    same box for frames recognition skips (max-fps), before or after a frame or two with nobody in view,
    the photo again — over and over (P photo, S stranger, B nobody; at ``fps`` for 2 s). The healed misses
    join the photo's recognitions into one run, but the unrecognised frames around each miss are dropped:
    the judge never reads one of the stranger's."""
    import numpy as np

    from smartlock.engine.assembly import InProcessRecognition
    from smartlock.engine.frames import Frame
    from smartlock.recognition.schemas import Face

    shown: dict[int, str] = {}  # frame number -> "P" photo, "S" stranger, "B" nobody
    photo, stranger = np.eye(512, dtype=np.float32)[0], np.eye(512, dtype=np.float32)[1]

    def finder(image: np.ndarray) -> list[Detection]:
        nobody = shown[int(image[0, 0, 0])] == "B"
        return [] if nobody else [Detection(BOX, 0.9, np.zeros((5, 2), np.float32))]

    class InProcess(InProcessRecognition):
        def __init__(self) -> None:
            self.keeps_embeddings, self.takes_found = True, True

        def found(self, image: np.ndarray, detections: object) -> list[Face]:
            is_photo = shown[int(image[0, 0, 0])] == "P"
            return [Face.model_validate({
                "top_prediction": {"label": "alice", "confidence": 0.95 if is_photo else 0.1},
                "bounding_box": dict(zip(("left", "top", "right", "bottom"), BOX, strict=True)),
                "embedding": (photo if is_photo else stranger).tolist()})]

    class Records:
        def __init__(self) -> None:
            self.seen: list[list[Observation]] = []

        def judge(self, observations: list[Observation]) -> Verdict:
            self.seen.append(list(observations))
            return Verdict("undecided")

    judge = Records()
    clock = ManualClock()
    eng = Engine(EndlessFrames(clock), InProcess(), FakeDoor(), UnlockPolicy(0.8, 2, 1.5),
                 gate=Gate(finder, min_face=0, min_sharpness=0), clock=clock,
                 liveness=LivenessCheck(judge, 100), settings=LoopSettings(mirror=False, max_fps=10))
    for seq in range(1, round(2 * fps) + 1):
        shown[seq] = pattern[(seq - 1) % len(pattern)]
        image = np.full((120, 160, 3), 127, np.uint8)
        image[20:70, 10:60] = {"P": 200, "S": 60, "B": 127}[shown[seq]]  # (the gate's idle check sees it)
        image[0, 0, 0] = seq
        eng.process(Frame(image=image, seq=seq, received=clock(), captured=None))
        clock.advance(1 / fps)
    spans = ["".join(shown[seq] for seq in range(seen[0].seq, seen[-1].seq + 1))
             for seen in judge.seen if seen]
    assert any("B" in span for span in spans)  # runs were judged across healed misses ...
    assert all(shown[obs.seq] == "P" for seen in judge.seen for obs in seen)  # ... on the photo's frames only
