"""The engine's and the collector's files: written whole, listed and read back through engine/files.py."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from smartlock.engine.files import (
    collected_crop,
    collected_file,
    collected_frames,
    collected_path,
    crop_name,
    find_unlock_frame,
    list_unlock_frames,
    prune_collected,
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
