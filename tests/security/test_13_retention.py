"""Row 13, privacy: the engine's and collector's logs rotate at a size cap, unlock frames and collected frames
are kept for a bounded number of days and a bounded count (pruned in the background, never in the unlock
path), and every file holding faces or names is 0600 inside a 0700 folder, as the real writers make them."""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from smartlock.engine.collector import Collector
from smartlock.engine.commands import configure_logging
from smartlock.engine.engine import Engine, LoopSettings
from smartlock.engine.files import (
    collected_path,
    list_unlock_frames,
    sidecar_path,
    write_collected,
    write_unlock_frame,
)
from smartlock.engine.frames import Frame
from smartlock.engine.policy import Decision, UnlockPolicy
from smartlock.engine.sinks import Pruner, UnlockLog
from smartlock.logs import setup_logging
from tests.engine import system
from tests.engine.fakes import ClockStop, EndlessFrames, FakeDoor, ScriptedRecognizer, always, api_face, face
from tests.support import ManualClock, wait_for

NOW = 1_700_000_000.0  # the wall clock of the pruning tests: ages are set as file times against it
DAY = 86400.0
JPEG = b"\xff\xd8 frame \xff\xd9"
DECISION = Decision("alice", 0.97, (0.91, 0.97), 1.0, 1.4)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def set_age(path: Path, days: float, now: float = NOW) -> None:
    moment = now - days * DAY
    os.utime(path, (moment, moment))


def assert_private_tree(root: Path) -> list[Path]:
    """Every folder under ``root`` (itself included) is 0700 and every file 0600; returns the files."""
    assert mode(root) == 0o700, root
    files = []
    for folder, dirs, names in os.walk(root):
        for name in dirs:
            assert mode(Path(folder) / name) == 0o700, Path(folder) / name
        for name in names:
            assert mode(Path(folder) / name) == 0o600, Path(folder) / name
            files.append(Path(folder) / name)
    return files


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The umask most systems run with (022: new files world-readable unless the writer says otherwise)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        yield
    finally:
        for handler in root.handlers:
            if handler not in saved[0]:
                handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


# -- every file private, as the real writers make them ----------------------------------------------------


def test_unlock_frames_collected_frames_and_logs_are_private_whatever_the_umask(
    tmp_path: Path, loose_umask: None, restore_logging: None
) -> None:
    log_path = tmp_path / "log"
    # what an older version left: a world-readable log folder, log.txt and unlock-frames folder
    (log_path / "unlock-frames").mkdir(parents=True, mode=0o755)
    (log_path / "log.txt").write_text("older line\n")
    os.chmod(log_path, 0o755)
    os.chmod(log_path / "log.txt", 0o644)

    configure_logging(log_path)
    logging.getLogger("smartlock.engine").info("Unlocked for alice")
    folder = UnlockLog(log_path, 0.8).save(np.zeros((36, 64, 3), np.uint8),
                                           [face("alice", 0.97), face("bob", 0.85)], DECISION)
    collected = tmp_path / "collected"
    recognizer = ScriptedRecognizer([api_face("carol", 0.7)])
    collector = Collector(EndlessFrames(ManualClock()), recognizer, collected, min_confidence=0.6,
                          max_confidence=0.8, detector=always(True))
    image = np.full((360, 640, 3), 120, np.uint8)
    saved = collector.process(Frame(image=image, seq=1, received=0.0, captured=None))
    for handler in logging.getLogger().handlers:
        handler.flush()

    files = {p.relative_to(tmp_path) for p in assert_private_tree(log_path)}
    assert {Path("log/log.txt"), Path(f"log/unlock-frames/{folder.name}/alice-0.97"),
            Path(f"log/unlock-frames/{folder.name}/faces.json")} <= files
    assert "Unlocked for alice" in (log_path / "log.txt").read_text()
    assert saved is not None
    names = {p.name for p in assert_private_tree(collected)}
    assert {saved.name, sidecar_path(saved).name} <= names and any(".face-" in n for n in names)


# -- retention: days and count, by file times ---------------------------------------------------------------


def unlock_folders(log_path: Path) -> list[str]:
    return sorted(frame.name for frame in list_unlock_frames(log_path))


def test_unlock_frames_older_than_keep_days_or_beyond_keep_count_are_pruned(tmp_path: Path) -> None:
    folders = [write_unlock_frame(tmp_path, JPEG, {"faces": [api_face("alice", 0.9)]}, ["alice-0.9"])
               for _ in range(6)]
    for folder, days in zip(folders, (0.1, 1, 2, 3, 40, 41), strict=True):
        set_age(folder, days)
    staging_old = tmp_path / "unlock-frames" / ".incoming-crashed"
    staging_new = tmp_path / "unlock-frames" / ".incoming-writing"
    for staging, days in ((staging_old, 1), (staging_new, 0)):
        staging.mkdir()
        (staging / "frame.jpeg").write_bytes(JPEG)
        set_age(staging, days)

    by_days = UnlockLog(tmp_path, 0.8, keep_days=30, keep_count=10)
    assert by_days.prune(now=NOW) == 2  # the 40- and 41-day-old ones, although the count allows them
    assert unlock_folders(tmp_path) == sorted(f.name for f in folders[:4])
    assert not staging_old.exists() and staging_new.exists()  # a crash's leftover goes, a write going on not

    by_count = UnlockLog(tmp_path, 0.8, keep_days=30, keep_count=3)
    assert by_count.prune(now=NOW) == 1
    assert unlock_folders(tmp_path) == sorted(f.name for f in folders[:3])  # the newest three
    assert by_count.prune(now=NOW) == 0
    assert by_count.prune(now=NOW + 2.5 * DAY) == 0
    assert UnlockLog(tmp_path, 0.8, keep_days=2, keep_count=3).prune(now=NOW) == 0
    assert UnlockLog(tmp_path, 0.8, keep_days=1.5, keep_count=3).prune(now=NOW) == 1  # the 2-day-old one


def collected(folder: Path, label: str, days: float) -> Path:
    frame = collected_path(folder, label, 0.7, f"2024-01-0{int(days) % 9 + 1} 12:00:0{len(label) % 9}+00:00")
    crop = f"{frame.stem}.face-1.jpeg"
    write_collected(frame, JPEG, {"frame": frame.name, "faces": [{"crop": crop}]}, {crop: JPEG})
    for path in (frame, sidecar_path(frame), frame.with_name(crop)):
        set_age(path, days)
    return frame


def test_collected_frames_older_than_keep_days_or_beyond_keep_frames_are_pruned(tmp_path: Path) -> None:
    frames = [collected(tmp_path, label, days) for label, days in
              (("a", 0.5), ("bb", 1), ("ccc", 2), ("dddd", 35), ("eeeee", 60))]
    orphan = tmp_path / "zed-0.70-2024-01-01 10:00:00+00:00.json"  # a sidecar whose frame a crash never wrote
    orphan.write_text("{}")
    set_age(orphan, 0.5)
    temp = tmp_path / ".half.jpeg.abc.tmp"
    temp.write_bytes(b"x")
    set_age(temp, 0.5)

    def left() -> list[str]:
        return sorted(p.name for p in tmp_path.iterdir())

    by_days = Collector(EndlessFrames(ManualClock()), ScriptedRecognizer([]), tmp_path, min_confidence=0.6,
                        max_confidence=0.8, keep_days=30, keep_frames=100)
    assert by_days.prune(now=NOW) == 2
    kept = {f.name for f in frames[:3]} | {sidecar_path(f).name for f in frames[:3]} \
        | {f"{f.stem}.face-1.jpeg" for f in frames[:3]}
    assert left() == sorted(kept)  # crops and sidecars went with their frames; orphan and temp too

    by_count = Collector(EndlessFrames(ManualClock()), ScriptedRecognizer([]), tmp_path, min_confidence=0.6,
                         max_confidence=0.8, keep_days=30, keep_frames=1)
    assert by_count.prune(now=NOW) == 2
    assert left() == sorted([frames[0].name, sidecar_path(frames[0]).name, f"{frames[0].stem}.face-1.jpeg"])


# -- pruning runs in the background, never in the unlock path ----------------------------------------------


def test_pruning_runs_in_the_background_and_never_holds_up_an_unlock(tmp_path: Path) -> None:
    entered, release = threading.Event(), threading.Event()
    sweeps: list[int] = []
    log = UnlockLog(tmp_path, 0.8, keep_days=30, keep_count=2)

    def slow_prune() -> int:
        entered.set()
        release.wait(30)  # a sweep over a slow disk
        sweeps.append(1)
        return log.prune()

    log.pruner = Pruner(slow_prune, "unlock frames", every=3600, gap=0).start()
    clock, door = ManualClock(), FakeDoor()
    engine = Engine(EndlessFrames(clock), ScriptedRecognizer([api_face("alice", 0.95)]), door,
                    UnlockPolicy(0.8, 1, 1.0), detector=always(True), unlock_log=log,
                    settings=LoopSettings(fps=2, max_fps=10, block_time=1), clock=clock)
    try:
        wait_for(entered.is_set, what="the first sweep to start (and hang)")
        stop = ClockStop(clock)
        while len(door.opened) < 5:  # every unlock goes through while the sweep hangs
            engine.step(stop)
        assert len(list_unlock_frames(tmp_path)) == 5 and not sweeps
        release.set()
        wait_for(lambda: len(list_unlock_frames(tmp_path)) == 2, what="the pruner to apply --keep-unlocks")
    finally:
        release.set()
        log.close()
    assert engine.stats.unlocks == 5 and engine.stats.frames_not_saved == 0


# -- logs rotate at the size cap ---------------------------------------------------------------------------


def test_the_log_rotates_at_its_size_cap_and_keeps_the_backups_asked_for(
    tmp_path: Path, loose_umask: None, restore_logging: None
) -> None:
    log_file = tmp_path / "log" / "log.txt"
    setup_logging("INFO", log_file, max_bytes=2000, backups=2)
    for index in range(200):
        logging.getLogger("smartlock.engine").info("Analysing frame %03d... %s", index, "x" * 40)
    for handler in logging.getLogger().handlers:
        handler.flush()
    files = sorted(p.name for p in log_file.parent.iterdir())
    assert files == ["log.txt", "log.txt.1", "log.txt.2"]  # 200 lines of ~100 bytes: many rotations, 3 kept
    for name in files:
        path = log_file.parent / name
        assert path.stat().st_size <= 2000 and mode(path) == 0o600
    assert "frame 199" in log_file.read_text()
    assert mode(log_file.parent) == 0o700


# -- a real engine process ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.faces
@pytest.mark.timeout(240)
def test_a_real_engine_prunes_old_unlocks_rotates_its_log_and_writes_only_private_files(
    tmp_path: Path, faces_dir: Path, loose_umask: None
) -> None:
    log_path = tmp_path / "log"
    logs = tmp_path / "service-logs"
    logs.mkdir()
    # an older engine's leftovers: world-readable folder and log, unlock frames from 40 days ago
    old = [write_unlock_frame(log_path, JPEG, {"faces": []}, ["alice-0.99"]) for _ in range(3)]
    for folder in old:
        os.chmod(folder, 0o755)
        set_age(folder, 40, now=time.time())  # the real engine prunes against the wall clock
    os.chmod(log_path, 0o755)
    (log_path / "log.txt").write_text("older line\n")
    os.chmod(log_path / "log.txt", 0o644)
    video = system.face_video(faces_dir, tmp_path / "face.mp4", seconds=30.0)
    cap = int(0.01 * 1024 * 1024)  # --log-max-mb 0.01, in bytes
    with system.fake_recognition() as recognition, system.door(tmp_path, logs, lock_delay=0.5) as door:
        start_id = door.last_id()
        args = ["engine", "--camera-url", str(video), "--face-recognition-api-url", recognition.url,
                "--door-api-url", door.unlock_url, "--door-secret-file", str(door.secret_file),
                "--log-path", str(log_path), "--min-frames", "1", "--block-time", "0.2",
                "--log-max-mb", "0.01", "--log-backups", "2", "--keep-days", "30", "--keep-unlocks", "1000",
                "--liveness", "off"]  # about retention: a photo video must unlock
        with system.smartlock_process(args, logs / "engine.out") as engine:
            try:
                wait_for(lambda: "Retention: removed 3 old unlock frames" in engine.text(), timeout=60,
                         what="the start-up sweep")
                wait_for(lambda: len(door.unlocks(start_id)) >= 2 and len(list_unlock_frames(log_path)) >= 2,
                         timeout=60, interval=0.2, what="two unlocks with their frames")
                wait_for(lambda: (log_path / "log.txt.2").exists(), timeout=90, interval=0.2,
                         what="the log to rotate twice")
            except AssertionError as err:
                raise AssertionError(f"{err}; output:\n{engine.text()[-3000:]}") from None
        assert engine.popen.returncode == 0
    assert not any(folder.exists() for folder in old)
    assert {f.name for f in list_unlock_frames(log_path)}  # the new ones stay
    files = assert_private_tree(log_path)
    logs_kept = sorted(p.name for p in files if p.name.startswith("log.txt"))
    assert logs_kept == ["log.txt", "log.txt.1", "log.txt.2"]
    assert all((log_path / name).stat().st_size <= cap for name in logs_kept)
    assert (log_path / "log.txt.1").stat().st_size > cap // 2  # rotated because full, not on every line
