"""Row 14, engine and collector share: on a full disk (an unlock frame, a collected frame or the log cannot be
written: OSError ENOSPC) they log once per outage and carry on. The unlock still happens (the door is the
authority, not the disk), or not, exactly as with a healthy disk; nothing crashes; writing resumes when
space comes back. Injected writers for the unit cases, and real processes on a 3 MB tmpfs."""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from smartlock.engine.collector import Collector
from smartlock.engine.engine import Engine, LoopSettings
from smartlock.engine.files import list_unlock_frames, write_collected, write_unlock_frame
from smartlock.engine.frames import Frame
from smartlock.engine.policy import UnlockPolicy
from smartlock.engine.sinks import Pruner, UnlockLog
from smartlock.logs import PrivateRotatingFileHandler
from tests.engine import system
from tests.engine.fakes import (
    ClockStop,
    EndlessFrames,
    FakeDoor,
    ListSink,
    ScriptedRecognizer,
    always,
    api_face,
)
from tests.support import ManualClock, wait_for


def disk_full(*_: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


class Disk:
    """Writers that fail with ENOSPC while ``full``, and write for real otherwise."""

    def __init__(self) -> None:
        self.full = True
        self.refused = 0

    def unlock_writer(self, *args):  # type: ignore[no-untyped-def]
        if self.full:
            self.refused += 1
            disk_full()
        return write_unlock_frame(*args)

    def collected_writer(self, *args) -> None:  # type: ignore[no-untyped-def]
        if self.full:
            self.refused += 1
            disk_full()
        write_collected(*args)


def lines(caplog: pytest.LogCaptureFixture, needle: str) -> int:
    return sum(needle in record.getMessage() for record in caplog.records)


def test_unlocks_go_on_when_the_unlock_frame_cannot_be_written_and_it_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smartlock")
    disk, door, sink, clock = Disk(), FakeDoor(), ListSink(), ManualClock()
    engine = Engine(EndlessFrames(clock), ScriptedRecognizer([api_face("alice", 0.95)]), door,
                    UnlockPolicy(0.8, 2, 1.5), detector=always(True),
                    unlock_log=UnlockLog(tmp_path, 0.8, writer=disk.unlock_writer), events=sink,
                    settings=LoopSettings(fps=2, max_fps=10, block_time=1), clock=clock)
    stop = ClockStop(clock)
    while len(door.opened) < 4:
        engine.step(stop)
    # every unlock the policy decided was performed, as with a healthy disk (K = 2 frames each)
    assert door.opened == [("alice", 0.95)] * 4 and [d.frames for d in engine.stats.unlocked] == [2] * 4
    assert disk.refused == 4 and engine.stats.frames_not_saved == 4 and list_unlock_frames(tmp_path) == []
    assert lines(caplog, "Saving unlock frames failed") == 1  # once for the outage, not once per unlock
    unlocked = [e for e in sink.events if e["event"] == "unlocked"]
    assert len(unlocked) == 4 and not any("frame_dir" in e for e in unlocked)

    disk.full = False
    while len(door.opened) < 5:
        engine.step(stop)
    [saved] = list_unlock_frames(tmp_path)
    assert [e for e in sink.events if e["event"] == "unlocked"][-1]["frame_dir"] == saved.name
    assert lines(caplog, "Saving unlock frames works again after 4 failure(s)") == 1
    assert lines(caplog, "Saving unlock frames failed") == 1


def test_a_stranger_still_never_unlocks_on_a_full_disk(tmp_path: Path) -> None:
    disk, door, clock = Disk(), FakeDoor(), ManualClock()
    engine = Engine(EndlessFrames(clock), ScriptedRecognizer([api_face("mallory", 0.4)]), door,
                    UnlockPolicy(0.8, 1, 1.0), detector=always(True),
                    unlock_log=UnlockLog(tmp_path, 0.8, writer=disk.unlock_writer), clock=clock)
    stop = ClockStop(clock)
    while engine.stats.frames_analysed < 10:
        engine.step(stop)
    assert door.calls == [] and disk.refused == 0


def test_the_collector_skips_frames_it_cannot_write_logs_once_and_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="smartlock")
    disk = Disk()
    recognizer = ScriptedRecognizer([api_face("carol", 0.7)])
    collector = Collector(EndlessFrames(ManualClock()), recognizer, tmp_path, min_confidence=0.6,
                          max_confidence=0.8, detector=always(True),
                          writer=disk.collected_writer)
    image = np.full((360, 640, 3), 90, np.uint8)
    for seq in range(1, 6):
        assert collector.process(Frame(image=image, seq=seq, received=0.0, captured=None)) is None
    assert disk.refused == 5 and collector.save_errors == 5 and list(tmp_path.iterdir()) == []
    assert lines(caplog, "Saving collected frames failed") == 1
    disk.full = False
    saved = collector.process(Frame(image=image, seq=6, received=0.0, captured=None))
    assert saved is not None and saved.is_file()
    assert lines(caplog, "Saving collected frames works again after 5 failure(s)") == 1


def test_a_crop_written_before_the_disk_filled_is_not_left_behind(tmp_path: Path, monkeypatch) -> None:
    from smartlock.engine import files

    real = files.atomic_write

    def fills_after_the_crop(path: Path, data: bytes, mode: int | None = None) -> None:
        if path.suffix == ".json":
            disk_full()
        real(path, data, mode)

    monkeypatch.setattr(files, "atomic_write", fills_after_the_crop)
    frame = tmp_path / "carol-0.70-2024-01-01 10:00:00+00:00.jpeg"
    with pytest.raises(OSError):
        write_collected(frame, b"jpeg", {"faces": []}, {"crop.jpeg": b"face"})
    assert list(tmp_path.iterdir()) == []  # no face crop without its frame and sidecar


class FullFile(io.StringIO):
    def __init__(self, disk: Disk) -> None:
        super().__init__()
        self.disk = disk

    def write(self, text: str) -> int:
        if self.disk.full:
            disk_full()
        return super().write(text)

    def flush(self) -> None:
        if self.disk.full:
            disk_full()


def test_the_log_file_on_a_full_disk_is_reported_once_and_logging_carries_on(tmp_path: Path) -> None:
    disk, errors = Disk(), io.StringIO()

    class Handler(PrivateRotatingFileHandler):
        def _open(self):  # type: ignore[no-untyped-def]
            return FullFile(disk) if disk.full else super()._open()

    handler = Handler(tmp_path / "log.txt", max_bytes=1_000_000, backups=1, errors=errors)
    log = logging.getLogger("tests.disk-full")
    log.propagate, log.level = False, logging.INFO
    log.addHandler(handler)
    try:
        for index in range(5):
            log.info("line %d", index)  # never raises
        assert errors.getvalue().count("cannot write the log file") == 1 and handler.lost == 5
        disk.full = False
        log.info("line after")
        handler.flush()
    finally:
        log.removeHandler(handler)
        handler.close()
    assert "is writable again (5 line(s) lost)" in errors.getvalue()
    assert (tmp_path / "log.txt").read_text().strip().endswith("line after")
    assert handler.outages == 1


def test_a_failing_sweep_is_logged_once_and_the_pruner_keeps_going(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="smartlock")
    pruner = Pruner(disk_full, "unlock frames", every=3600, gap=0).start()  # type: ignore[arg-type]
    try:
        for sweeps in range(1, 4):
            wait_for(lambda sweeps=sweeps: pruner.sweeps >= sweeps, what=f"sweep {sweeps}")
            pruner.poke()
    finally:
        pruner.close()
    assert lines(caplog, "Removing old unlock frames failed") == 1


# -- real processes on a 3 MB tmpfs ------------------------------------------------------------------------


@contextlib.contextmanager
def tiny_tmpfs(folder: Path, size: str = "3m") -> Iterator[Path]:
    folder.mkdir()
    try:
        command = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)]
        mounted = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"cannot mount a tmpfs here: {err}")
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses more (ENOSPC)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(100_000):
            try:
                os.write(fd, b"\0" * 4096)
            except OSError as err:
                assert err.errno == errno.ENOSPC
                return filler
    finally:
        os.close(fd)
    raise AssertionError(f"{disk} never filled up")


@pytest.mark.slow
@pytest.mark.faces
@pytest.mark.timeout(300)
def test_real_engine_and_collector_on_a_full_tmpfs_unlock_log_once_and_recover(
    tmp_path: Path, faces_dir: Path
) -> None:
    logs = tmp_path / "service-logs"
    logs.mkdir()
    video = system.face_video(faces_dir, tmp_path / "face.mp4", seconds=30.0)
    with tiny_tmpfs(tmp_path / "disk") as disk, system.fake_recognition(confidence=0.9) as recognition, \
            system.door(tmp_path, logs, lock_delay=0.5) as door:
        engine_log, collected = disk / "log", disk / "collected"
        filler = fill(disk)
        start_id = door.last_id()
        common = ["--camera-url", str(video), "--face-recognition-api-url", recognition.url]
        engine_args = ["engine", *common, "--door-api-url", door.unlock_url, "--door-secret-file",
                       str(door.secret_file), "--log-path", str(engine_log), "--min-frames", "1",
                       "--block-time", "0.2", "--liveness", "off"]  # about the disk, not liveness
        collect_args = ["collect", "-min", "0.5", "-max", "1.0", *common, "--log-path", str(collected),
                        "--fps", "4"]
        with system.smartlock_process(engine_args, logs / "engine.out") as engine, \
                system.smartlock_process(collect_args, logs / "collect.out") as collector:
            try:
                # the door opens on every decision although nothing can be written
                wait_for(lambda: len(door.unlocks(start_id)) >= 3 and
                         engine.text().count("Door unlocked") >= 3,
                         timeout=90, interval=0.2, what="three unlocks on the full disk")
                wait_for(lambda: collector.text().count('"label"') >= 4, timeout=60, interval=0.2,
                         what="the collector to analyse four frames on the full disk")
                assert engine.popen.poll() is None and collector.popen.poll() is None  # nothing crashed
                assert engine.text().count("Saving unlock frames failed") == 1
                assert engine.text().count("cannot write the log file") == 1
                assert collector.text().count("Saving collected frames failed") == 1
                assert collector.text().count("cannot write the log file") == 1
                assert list_unlock_frames(engine_log) == []
                assert not list(collected.glob("*.jpeg"))

                filler.unlink()  # space comes back: both write again without a restart
                wait_for(lambda: list_unlock_frames(engine_log) and "Saving unlock frames works again"
                         in engine.text(), timeout=60, interval=0.2, what="an unlock frame after the outage")
                wait_for(lambda: list(collected.glob("*.json")) and "Saving collected frames works again"
                         in collector.text(), timeout=60, interval=0.2, what="a collected frame after it")
                wait_for(lambda: "writable again" in engine.text() and "writable again" in collector.text(),
                         timeout=60, interval=0.2, what="the log files written again")
            except AssertionError as err:
                raise AssertionError(f"{err}; engine:\n{engine.text()[-2500:]}\ncollector:\n"
                                     f"{collector.text()[-1500:]}") from None
        assert engine.popen.returncode == 0 and collector.popen.returncode == 0
        assert "Door unlocked" in (engine_log / "log.txt").read_text()
        assert engine.text().count("Saving unlock frames failed") == 1
    shutil.rmtree(tmp_path / "disk", ignore_errors=True)
