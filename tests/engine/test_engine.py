"""The engine loop with fake collaborators: when it unlocks, when it refuses, and that errors never unlock."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from smartlock.engine.engine import Engine, LoopSettings
from smartlock.engine.policy import UnlockPolicy
from smartlock.engine.sinks import UnlockLog
from smartlock.errors import ServiceError
from tests.engine.fakes import (
    ClockStop,
    EndlessFrames,
    FakeDoor,
    ListSink,
    ScriptedRecognizer,
    always,
    api_face,
)
from tests.support import ManualClock


def make_engine(tmp_path: Path, recognizer: ScriptedRecognizer, *, k: int = 2, window: float = 1.5,
                door: FakeDoor | None = None, detector=None, clock: ManualClock | None = None,
                **settings) -> tuple[Engine, FakeDoor, ListSink, ManualClock]:
    clock = clock or ManualClock()
    door = door or FakeDoor()
    sink = ListSink()
    engine = Engine(
        EndlessFrames(clock), recognizer, door, UnlockPolicy(0.8, k, window),
        detector=detector if detector is not None else always(True),
        unlock_log=UnlockLog(tmp_path, 0.8), events=sink,
        settings=LoopSettings(**{"fps": 2, "max_fps": 10, "block_time": 6, **settings}), clock=clock,
    )
    return engine, door, sink, clock


def run_steps(engine: Engine, clock: ManualClock, seconds: float) -> int:
    """Drive the loop for ``seconds`` of fake time; returns how many frames were processed."""
    stop = ClockStop(clock)
    end = clock() + seconds
    processed = 0
    while clock() < end:
        processed += engine.step(stop)
    return processed


def unlock_dirs(tmp_path: Path) -> list[Path]:
    root = tmp_path / "unlock-frames"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


def test_enrolled_person_unlocks_once_after_k_frames_and_the_frame_is_logged(tmp_path, caplog) -> None:
    recognizer = ScriptedRecognizer([api_face("alice", 0.93), api_face("bob", 0.2)])
    engine, door, sink, clock = make_engine(tmp_path, recognizer)
    caplog.set_level(logging.INFO, logger="smartlock.engine")

    run_steps(engine, clock, 3.0)  # well inside the 6 s block time after the unlock

    assert door.opened == [("alice", 0.93)]
    assert engine.stats.unlocked[0].frames == 2
    assert "Door unlocked" in caplog.messages
    [folder] = unlock_dirs(tmp_path)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["alice-0.93", "faces.json", "frame.jpeg"]
    assert (folder / "alice-0.93").stat().st_size == 0
    assert (folder / "frame.jpeg").read_bytes()[:2] == b"\xff\xd8"
    document = json.loads((folder / "faces.json").read_text())
    assert [f["top_prediction"]["label"] for f in document["faces"]] == ["alice", "bob"]
    assert document["decision"]["frames"] == 2
    assert sink.kinds().count("unlocked") == 1
    unlocked = next(e for e in sink.events if e["event"] == "unlocked")
    assert unlocked["person"] == "alice" and unlocked["frame_dir"] == folder.name
    assert unlocked["liveness"] == "off"  # no liveness check: the seed's rule, and the event says so


def test_k1_unlocks_on_the_first_frame_like_the_seed(tmp_path) -> None:
    engine, door, _, clock = make_engine(tmp_path, ScriptedRecognizer([api_face("alice", 0.9)]), k=1)
    assert engine.step(ClockStop(clock))
    assert door.opened == [("alice", 0.9)]


def test_stranger_below_threshold_never_unlocks(tmp_path) -> None:
    recognizer = ScriptedRecognizer([api_face("alice", 0.62)])
    engine, door, sink, clock = make_engine(tmp_path, recognizer)
    processed = run_steps(engine, clock, 10.0)
    assert processed >= 50  # it kept analysing at the burst rate
    assert door.calls == [] and unlock_dirs(tmp_path) == []
    refused = [e for e in sink.events if e["event"] == "refused-unknown"]
    assert 5 <= len(refused) <= 11  # throttled to one a second
    assert refused[0]["best_label"] == "alice"


def test_one_lucky_frame_is_not_enough_with_k2(tmp_path) -> None:
    answers = [[api_face("alice", 0.85)]] + [[api_face("alice", 0.4)]] * 30
    engine, door, _, clock = make_engine(tmp_path, ScriptedRecognizer(*answers))
    run_steps(engine, clock, 3.0)
    assert door.calls == []


def test_frames_without_a_face_skip_recognition_and_are_sampled_at_fps(tmp_path) -> None:
    recognizer = ScriptedRecognizer([api_face("alice", 0.99)])
    engine, door, _, clock = make_engine(tmp_path, recognizer, detector=always(False))
    processed = run_steps(engine, clock, 5.0)
    assert recognizer.calls == 0 and door.calls == []
    assert 9 <= processed <= 11  # 2 fps
    assert engine.stats.frames_without_face == processed


def test_a_face_switches_to_the_burst_rate(tmp_path) -> None:
    recognizer = ScriptedRecognizer([api_face("alice", 0.5)])
    engine, _, _, clock = make_engine(tmp_path, recognizer)
    processed = run_steps(engine, clock, 5.0)
    assert 45 <= processed <= 51  # max_fps 10, not fps 2


def test_slow_recognizer_runs_back_to_back_in_a_burst(tmp_path) -> None:
    clock = ManualClock()
    recognizer = ScriptedRecognizer([api_face("alice", 0.5)], cost=0.25, clock=clock)
    engine, _, _, clock = make_engine(tmp_path, recognizer, clock=clock)
    stop = ClockStop(clock)
    run_steps(engine, clock, 5.0)
    assert 18 <= recognizer.calls <= 21  # 0.25 s each, no idle time in between
    assert stop.waited == 0.0


@pytest.mark.parametrize("failure", [ServiceError("recognition API down"), ConnectionError("refused"),
                                     [{"top_prediction": {"label": "alice"}}], {"faces": "nope"}])
def test_recognition_failures_never_unlock_and_the_engine_recovers(tmp_path, failure) -> None:
    good = [api_face("alice", 0.95)]
    answers = [good] + [failure] * 10 + [good]
    recognizer = ScriptedRecognizer(*answers)
    engine, door, _, clock = make_engine(tmp_path, recognizer, k=2, window=60)
    for _ in range(100):
        if recognizer.calls == 11:
            break
        engine.step(ClockStop(clock))
    assert door.calls == []
    assert engine.stats.recognition_errors == 10
    run_steps(engine, clock, 1.0)
    assert door.opened == [("alice", 0.95)]


def test_door_errors_keep_the_door_locked_then_retry(tmp_path, caplog) -> None:
    door = FakeDoor(fail=2)
    engine, door, sink, clock = make_engine(tmp_path, ScriptedRecognizer([api_face("alice", 0.9)]), door=door)
    caplog.set_level(logging.INFO, logger="smartlock.engine")
    run_steps(engine, clock, 0.35)
    assert len(door.calls) == 1 and door.opened == []
    assert "Door unlocked" not in caplog.messages
    assert unlock_dirs(tmp_path) == [] and "unlocked" not in sink.kinds()
    run_steps(engine, clock, 0.5)  # inside the 1 s retry pause: no new attempt
    assert len(door.calls) == 1
    run_steps(engine, clock, 2.0)
    assert len(door.calls) == 3 and door.opened == [("alice", 0.9)]
    assert engine.stats.door_errors == 2
    assert len(unlock_dirs(tmp_path)) == 1


def test_block_time_ignores_frames_then_needs_fresh_evidence(tmp_path) -> None:
    recognizer = ScriptedRecognizer([api_face("alice", 0.9)])
    engine, door, _, clock = make_engine(tmp_path, recognizer, block_time=6)
    run_steps(engine, clock, 0.3)
    assert len(door.opened) == 1
    calls = recognizer.calls
    run_steps(engine, clock, 5.5)
    assert recognizer.calls == calls  # blocked: nothing analysed
    run_steps(engine, clock, 1.0)
    assert len(door.opened) == 2
    assert engine.stats.unlocked[1].frames == 2  # two new frames, none from before the block


def test_run_stops_when_asked(tmp_path) -> None:
    engine = Engine(EndlessFrames(ManualClock()), ScriptedRecognizer([]), FakeDoor(), UnlockPolicy(),
                    detector=always(False), settings=LoopSettings(fps=50))
    stop = threading.Event()
    thread = threading.Thread(target=engine.run, args=(stop,))
    thread.start()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


def test_while_recognition_fails_the_engine_retries_at_fps_not_at_the_burst_rate(tmp_path) -> None:
    recognizer = ScriptedRecognizer(ServiceError("recognition API down"))
    engine, door, _, clock = make_engine(tmp_path, recognizer)
    run_steps(engine, clock, 5.0)
    assert 9 <= recognizer.calls <= 11  # 2 fps, although Haar sees a face every time
    assert door.calls == []


def test_a_frozen_camera_frame_is_not_evidence(tmp_path) -> None:
    recognizer = ScriptedRecognizer([api_face("alice", 0.99)])
    engine, door, _, clock = make_engine(tmp_path, recognizer, k=1)
    old = EndlessFrames(clock).wait_newer(0, 0)
    clock.advance(2.5)  # the camera stopped sending 2.5 s ago; this is still its newest frame
    assert engine.process(old) is None
    assert recognizer.calls == 0 and door.calls == [] and engine.stats.stale_frames == 1


def test_each_processed_frame_logs_the_counts_at_debug(tmp_path, caplog) -> None:
    engine, _, _, clock = make_engine(tmp_path, ScriptedRecognizer([api_face("alice", 0.9)]), k=1)
    caplog.set_level(logging.DEBUG, logger="smartlock.engine")
    assert engine.step(ClockStop(clock))
    counts = [m for m in caplog.messages if m.startswith("Frames: ")]
    assert counts == ["Frames: seen 1, without face 0, stale 0, analysed 1, recognition errors 0, "
                      "door errors 0, unlocks 1"]
