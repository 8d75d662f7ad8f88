"""The engine's and the collector's files: written whole, listed and read back through engine/files.py."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from smartlock.engine.files import (
    collected_crop,
    collected_file,
    collected_frames,
    collected_path,
    crop_name,
    find_unlock_frame,
    list_unlock_frames,
    name_timestamp,
    prune_collected,
    read_unlock_frame,
    sidecar_path,
    unlock_frame,
    write_collected,
    write_unlock_frame,
)
from tests.engine.fakes import api_face

JPEG = b"\xff\xd8 not really a jpeg \xff\xd9"


def age(path: Path, seconds_ago: float) -> None:
    moment = datetime.now().timestamp() - seconds_ago
    os.utime(path, (moment, moment))


def test_unlock_frames_are_listed_newest_first_with_their_faces(tmp_path: Path) -> None:
    document = {"faces": [api_face("alice", 0.93)], "decision": {"label": "alice", "frames": 2},
                "threshold": 0.8, "captured": 1700000000.5}
    older = write_unlock_frame(tmp_path, JPEG, document, ["alice-0.93"])
    newer = write_unlock_frame(tmp_path, JPEG, {"faces": "damaged"})
    age(older, 60)
    assert sorted(p.name for p in older.iterdir()) == ["alice-0.93", "faces.json", "frame.jpeg"]

    listed = list_unlock_frames(tmp_path)
    assert [saved.folder for saved in listed] == [newer, older]
    assert listed[1].frame.read_bytes() == JPEG
    assert [(f.label, f.confidence) for f in listed[1].faces] == [("alice", 0.93)]
    assert listed[1].decision == {"label": "alice", "frames": 2}
    assert (listed[1].threshold, listed[1].captured) == (0.8, 1700000000.5)
    assert listed[0].faces == []  # a damaged faces.json gives no faces, not an error
    assert [saved.folder for saved in list_unlock_frames(tmp_path, limit=1)] == [newer]


def test_an_unlock_frame_is_found_by_its_folder_name_or_its_time(tmp_path: Path) -> None:
    folder = write_unlock_frame(tmp_path, JPEG, {"faces": []})
    found = unlock_frame(tmp_path, folder.name)
    assert found is not None and found.folder == folder
    for unsafe in ("../unlock-frames", ".incoming-x", "", None, "a/b"):
        assert unlock_frame(tmp_path, unsafe) is None
    by_time = find_unlock_frame(tmp_path, datetime.fromisoformat(folder.name).timestamp() + 1.0)
    assert by_time is not None and by_time.folder == folder
    assert find_unlock_frame(tmp_path, datetime.fromisoformat(folder.name).timestamp() + 60) is None
    assert list_unlock_frames(tmp_path / "nothing-here") == []


def collect(folder: Path, label: str, confidence: float, seconds_ago: float, crops: int = 1) -> Path:
    frame = collected_path(folder, label, confidence)
    names = [crop_name(frame, index + 1) for index in range(crops)]
    faces = [{**api_face(label, confidence), "in_band": True, "crop": name} for name in names]
    write_collected(frame, JPEG, {"frame": frame.name, "faces": faces}, dict.fromkeys(names, JPEG))
    for path in [frame, sidecar_path(frame), *(folder / name for name in names)]:
        age(path, seconds_ago)
    return frame


def test_collected_frames_are_listed_newest_first_with_their_best_crop(tmp_path: Path) -> None:
    old = collect(tmp_path, "alice", 0.7234, 60)
    new = collect(tmp_path, "bob", 0.61, 10, crops=0)
    (tmp_path / "notes.jpeg").write_bytes(JPEG)  # not a collector's name: ignored
    age(tmp_path / "notes.jpeg", 100)

    frames = collected_frames(tmp_path)
    assert [f.name for f in frames] == [new.name, old.name]
    assert (frames[1].label, frames[1].confidence, frames[1].crop) == ("alice", 0.72, crop_name(old, 1))
    assert frames[0].crop is None and frames[1].taken in old.name
    assert json.loads(sidecar_path(old).read_text())["frame"] == old.name
    assert [f["top_prediction"]["label"] for f in frames[1].faces()] == ["alice"]
    assert collected_file(tmp_path, old.name) == old
    assert collected_crop(tmp_path, old.name) == tmp_path / crop_name(old, 1)
    assert collected_crop(tmp_path, new.name) is None
    for unsafe in ("../x.jpeg", ".hidden.jpeg", sidecar_path(old).name, "missing.jpeg"):
        assert collected_file(tmp_path, unsafe) is None
    assert [f.name for f in collected_frames(tmp_path, limit=1)] == [new.name]


def test_prune_collected_keeps_the_newest_with_their_crops_and_sidecars(tmp_path: Path) -> None:
    frames = [collect(tmp_path, "alice", 0.7, seconds_ago, crops=2) for seconds_ago in (300, 200, 100)]
    assert prune_collected(tmp_path, keep=1) == 2
    kept = frames[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [kept.name, sidecar_path(kept).name, crop_name(kept, 1), crop_name(kept, 2)]
    )
    assert prune_collected(tmp_path, keep=1) == 0
    assert prune_collected(tmp_path / "missing", keep=1) == 0


def test_prune_collected_never_deletes_pictures_it_did_not_write(tmp_path: Path) -> None:
    holiday = tmp_path / "holiday.jpeg"
    holiday.write_bytes(b"\xff\xd8 not the collector's")
    os.utime(holiday, (1, 1))  # the oldest file in the folder
    frames = [collect(tmp_path, "alice", 0.7, seconds_ago, crops=0) for seconds_ago in (200, 100)]
    assert prune_collected(tmp_path, keep=1, keep_days=1) == 1
    assert holiday.exists() and frames[-1].exists() and not frames[0].exists()


SHELL_SAFE = re.compile(r"[A-Za-z0-9._-]+")


def test_names_are_iso_basic_utc_and_shell_friendly(tmp_path: Path) -> None:
    moment = datetime(2026, 11, 29, 10, 31, 17, 640000, tzinfo=UTC)
    assert name_timestamp(moment) == "20261129T103117Z"
    assert name_timestamp(moment.timestamp()) == "20261129T103117Z"
    assert datetime.fromisoformat(name_timestamp(moment)) == moment.replace(microsecond=0)

    first = write_unlock_frame(tmp_path, JPEG, {"faces": []})
    second = write_unlock_frame(tmp_path, JPEG, {"faces": []})  # in the same second, most likely
    for folder in (first, second):
        assert SHELL_SAFE.fullmatch(folder.name), folder.name
        assert re.fullmatch(r"\d{8}T\d{6}Z(-\d+)?", folder.name)
    assert first != second

    # the collector's names, whether it passes a time (in any ISO form) or not
    expected = {"2026-11-29 11:31:17+01:00": "Al Gore-0.90-20261129T103117Z.jpeg",
                "20261129T103117Z": "Al Gore-0.90-20261129T103117Z-2.jpeg"}  # same second: a suffix
    for timestamp in (None, *expected):
        frame = collected_path(tmp_path / "c", "Al Gore", 0.9, timestamp)
        assert " " not in frame.name.replace("Al Gore", "") and ":" not in frame.name
        if timestamp:
            assert frame.name == expected[timestamp]
        write_collected(frame, JPEG, {"frame": frame.name, "faces": []})
    frames = collected_frames(tmp_path / "c")
    assert len(frames) == 3 and {f.label for f in frames} == {"Al Gore"}
    assert any(f.name == "Al Gore-0.90-20261129T103117Z-2.jpeg" for f in frames)


def test_old_local_time_folder_and_file_names_are_still_read(tmp_path: Path) -> None:
    """Installations from before the basic names keep their unlock frames and collected frames."""
    when = datetime(2026, 11, 29, 10, 31, 17).astimezone()
    old = tmp_path / "unlock-frames" / when.isoformat(" ")  # 2026-11-29 10:31:17+00:00
    old.mkdir(parents=True)
    (old / "frame.jpeg").write_bytes(JPEG)
    (old / "faces.json").write_text(json.dumps({"faces": [api_face("alice", 0.9)]}))
    found = find_unlock_frame(tmp_path, when.timestamp() + 1.2)
    assert found is not None and found.folder == old and found.faces[0].label == "alice"
    assert find_unlock_frame(tmp_path, when.timestamp(), old.name) == found  # named by the event
    twin = old.with_name(f"{old.name}-2")  # two in one second, old style
    old.rename(twin)
    assert find_unlock_frame(tmp_path, when.timestamp()) is not None

    new = tmp_path / "unlock-frames" / name_timestamp(when.timestamp() + 10)
    new.mkdir()
    (new / "frame.jpeg").write_bytes(JPEG)
    by_time = find_unlock_frame(tmp_path, when.timestamp() + 10.5)
    assert by_time is not None and by_time.folder == new
    assert find_unlock_frame(tmp_path, when.timestamp() + 100) is None

    collected = tmp_path / "collected"
    collected.mkdir()
    legacy = collected / "bob-0.81-2026-11-29 10:31:17+00:00.jpeg"
    legacy.write_bytes(JPEG)
    assert [(f.label, f.confidence, f.taken) for f in collected_frames(collected)] == [
        ("bob", 0.81, "2026-11-29 10:31:17+00:00")]


def test_each_face_keeps_its_liveness_verdict_when_saved(tmp_path: Path) -> None:
    faces = [{**api_face("alice", 0.93), "liveness": {"live": True, "score": 0.97}}, api_face("bob", 0.4)]
    folder = write_unlock_frame(tmp_path, JPEG, {"faces": faces})
    saved = read_unlock_frame(folder)
    assert saved is not None and [f.label for f in saved.faces] == ["alice", "bob"]
    assert saved.liveness == [{"live": True, "score": 0.97}, None]
