"""Liveness with real processes: camera (a rendered video), recognition API, door on the mock relay and the
engine with --liveness on, recognising over the API or in its own process (--model). An enrolled person's
rendered 3D head walking up unlocks; the same person's still photo and a card moved by hand are refused
with a `refused-spoof` event and the relay never moves; with --liveness off the still photo opens the door
again (the seed's rule); an attack's spoof lockout outlives the engine process."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from benchmarks.liveness_bench import load_photo, scenes
from smartlock.engine.spoofing import LOCKOUT_FILE
from tests.engine import system
from tests.engine.system import Door, Gallery
from tests.support import uvicorn_server, wait_for

pytestmark = [pytest.mark.faces, pytest.mark.slow, pytest.mark.timeout(240)]
# workdir, logs, gallery, api_port, door: tests/engine/conftest.py


@pytest.fixture(scope="module")
def photo(gallery: Gallery) -> scenes.Photo:
    """A held-out photo of an enrolled person (recognised above 0.9 on a wall), with its landmarks."""
    for path in gallery.probes.values():
        found = load_photo(path)
        if found is not None:
            return found
    pytest.skip("no probe photo with a face large enough to render")


def video(workdir: Path, kind: str, photo: scenes.Photo, seed: int = 3, still: bool | None = None) -> Path:
    """One second of the empty hallway, then 2.5 s of ``kind`` (rendered at 24 fps), then the hallway."""
    wall = next(iter(scenes.frames("photo-still", photo, seed, 1)))  # a frame only to size the hallway
    empty = scenes.finish(scenes.background(np.random.default_rng(seed)), np.random.default_rng(seed), 1.0)
    assert empty.shape == wall.shape
    frames = [empty] * 24 + list(scenes.frames(kind, photo, seed, 60, still=still)) + [empty] * 48
    return system.write_video(workdir / f"{kind}-{seed}.mp4", [(frame, 1 / scenes.FPS) for frame in frames],
                              fps=scenes.FPS)


def engine_name(kind: str, liveness: str, extra: tuple[str, ...] = ()) -> str:
    """The run's name: its engine's log folder and its output file under ``logs``."""
    return "-".join([kind, liveness, *(arg.strip("-") for arg in extra)])


def run(kind: str, liveness: str, photo: scenes.Photo, api_port: int, door: Door, workdir: Path, logs: Path,
        until: Callable[[list[dict], list[dict]], object], seed: int = 3, still: bool | None = None,
        extra: tuple[str, ...] = (), model_dir: Path | None = None,
        log_path: Path | None = None) -> tuple[list[dict], list[dict]]:
    """The engine on ``kind``'s video until ``until(events, unlocks)`` is true; (events, unlocks). With
    ``model_dir`` the engine recognises in its own process (--model, as `up` does), else over the API; its
    log path (where the spoof lockout is kept) is ``log_path``, else one of the run's own."""
    clip = video(workdir, kind, photo, seed, still)
    start_id = door.last_id()
    received, app = system.webhook_receiver()
    name = engine_name(kind, liveness, (*extra, *(("model",) if model_dir else ())))
    with uvicorn_server(app) as hook, system.camera(clip, logs) as camera_port, system.smartlock_process(
            system.engine_args(camera_port, door, log_path or workdir / f"engine-{name}",
                               api_port=None if model_dir else api_port, model_dir=model_dir,
                               liveness=liveness, extra=["--webhook-url", f"{hook}/events",
                                                         "--liveness-timeout", "3",
                                                         "--spoof-lockout", "0", *extra]),
            logs / f"engine-{name}.out") as engine:
        try:
            wait_for(lambda: until(received, door.unlocks(start_id)), timeout=90, interval=0.2,
                     what=f"the engine's verdict on {kind}")
        except AssertionError:
            print(engine.text()[-4000:])
            raise
        return list(received), door.unlocks(start_id)


def spoof_refused(events: list[dict], unlocks: list[dict]) -> bool:
    return any(event["event"] == "refused-spoof" for event in events) or bool(unlocks)


def event_or_unlock(name: str) -> Callable[[list[dict], list[dict]], bool]:
    return lambda events, unlocks: bool(unlocks) or any(event["event"] == name for event in events)


def judged_attack(events: list[dict], unlocks: list[dict]) -> bool:
    """An attack verdict, or an unlock and its event (posted after the relay moved)."""
    return any(e["event"] == "refused-spoof" and e["reason"] == "attack" for e in events) or (
        bool(unlocks) and any(e["event"] == "unlocked" for e in events))


@pytest.mark.parametrize("recognition", ["api", "in-process"])
def test_a_rendered_3d_head_of_an_enrolled_person_walking_up_unlocks(recognition, photo, api_port, door,
                                                                       workdir, logs, gallery) -> None:
    """The video loops: on a busy machine the engine may analyse too few frames of one approach to decide
    (refused on timeout, as a real door would); the next approach gets another chance, two at most. A real
    head is never judged an attack."""
    events, unlocks = run("genuine-approach", "on", photo, api_port, door, workdir, logs, judged_attack,
                          model_dir=gallery.model_dir if recognition == "in-process" else None)
    assert len(unlocks) == 1, [e for e in events if e["event"] != "recognised"]
    refused = [e for e in events if e["event"] == "refused-spoof"]
    assert all(e["reason"] in ("timeout", "undecided") for e in refused), refused
    assert len(refused) <= 2, refused
    (unlocked,) = [e for e in events if e["event"] == "unlocked"]  # what the Calibration page counts
    assert unlocked["liveness"] == "live" and unlocked["decided_by"] and unlocked["liveness_wait"] >= 0


@pytest.mark.parametrize("recognition", ["api", "in-process"])
@pytest.mark.parametrize("kind", ["photo-still", "card-plain"])
def test_a_photo_or_a_moved_card_of_an_enrolled_person_is_refused(kind, recognition, photo, api_port, door,
                                                                  workdir, logs, gallery) -> None:
    """Over the API and in-process (where recognition embeds the gate's faces, embeddings split tracks and
    a recognition below the threshold of the run's own face does not break it)."""
    events, unlocks = run(kind, "on", photo, api_port, door, workdir, logs, spoof_refused,
                          model_dir=gallery.model_dir if recognition == "in-process" else None)
    assert unlocks == []  # the refusal came first, and the relay never moved
    refused = next(e for e in events if e["event"] == "refused-spoof")
    # caught by a cue, or still undecided after the timeout or when the card left: never let in
    assert refused["reason"] in ("attack", "timeout", "undecided") and refused["track"] is not None
    assert any(e["event"] == "recognised" for e in events)  # it was recognised: liveness alone refused it
    if refused["reason"] == "attack":
        assert refused["decided_by"] and all(cue["decision"] != "abstain" for cue in refused["cues"])


STILL_SCREEN_SEED = 16  # a tablet on a stand replaying the head turning; without the still-frame rule the
# depth cues may judge it live (the video's head has real depth, in its landmarks and in its texture)


def test_a_screen_on_a_stand_replaying_a_turning_head_is_refused_for_its_frame(photo, api_port, door,
                                                                              workdir, logs) -> None:
    # the first verdict that is not a timeout (a busy machine may analyse too few frames of one pass)
    events, unlocks = run("screen-replay", "on", photo, api_port, door, workdir, logs, judged_attack,
                          seed=STILL_SCREEN_SEED, still=True)
    assert unlocks == []
    refused = next(e for e in events if e["event"] == "refused-spoof" and e["reason"] == "attack")
    assert "frame" in refused["decided_by"], refused
    frame_cue = next(cue for cue in refused["cues"] if cue["name"] == "frame")
    assert "enclose" in frame_cue["reason"], frame_cue


def test_liveness_still_frame_off_reaches_the_engine(photo, api_port, door, workdir, logs) -> None:
    """The same clip with ``--liveness-still-frame off``: whatever the verdict, not the still-frame rule's."""
    off = ("--liveness-still-frame", "off")
    events, _unlocks = run("screen-replay", "on", photo, api_port, door, workdir, logs, spoof_refused,
                           seed=STILL_SCREEN_SEED, still=True, extra=off)
    output = logs / f"engine-{engine_name('screen-replay', 'on', off)}.out"
    assert "--liveness-still-frame off" in output.read_text()
    for event in events:
        for cue in event.get("cues") or []:
            assert not (cue["name"] == "frame" and "enclose" in cue["reason"]), event


def test_liveness_off_restores_the_seed_rule(photo, api_port, door, workdir, logs) -> None:
    events, unlocks = run("photo-still", "off", photo, api_port, door, workdir, logs,
                          lambda events, unlocks: unlocks)
    assert len(unlocks) >= 1 and not [e for e in events if e["event"] == "refused-spoof"]


def test_an_attack_pauses_face_unlock_and_the_pause_outlives_the_engine(photo, api_port, door, workdir,
                                                                        logs) -> None:
    """--spoof-lockout 1: the still photo's refusal pauses face unlock; a new engine process on the same log
    path then refuses the enrolled person's real walk-up for the pause, and the relay never moves."""
    log_path = workdir / "engine-lockout"
    lockout = ("--spoof-lockout", "1")  # after run()'s own "0": the last one counts
    events, unlocks = run("photo-still", "on", photo, api_port, door, workdir, logs,
                          event_or_unlock("lockout"), extra=lockout, log_path=log_path)
    assert unlocks == []
    paused = next(e for e in events if e["event"] == "lockout")
    assert (log_path / LOCKOUT_FILE).stat().st_mode & 0o777 == 0o600
    assert json.loads((log_path / LOCKOUT_FILE).read_text())["until"] > time.time() + 60

    events, unlocks = run("genuine-approach", "on", photo, api_port, door, workdir, logs,
                          event_or_unlock("refused-lockout"), extra=lockout, log_path=log_path)
    assert unlocks == []
    refused = next(e for e in events if e["event"] == "refused-lockout")
    assert refused["until"] == paused["until"] and refused["person"]
