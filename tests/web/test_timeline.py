"""The event store and the mapping of engine events to timeline rows."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

import pytest

from smartlock.camera.mjpeg import jpeg_size
from smartlock.engine import files
from smartlock.web.events import EventStore
from smartlock.web.files import thumbnail_jpeg
from smartlock.web.timeline import entry_from_engine
from tests.web.fakes import jpeg


def find_unlock_frame(log_path: Path, when: float, folder_name: str | None = None) -> Path | None:
    """The frame the dashboard shows for an unlock event: the engine's ``find_unlock_frame``, as the
    webhook calls it."""
    saved = files.find_unlock_frame(log_path, when, folder_name)
    return saved.frame if saved is not None else None


@pytest.fixture
def store(tmp_path):
    events = EventStore(tmp_path, coalesce_seconds=10, max_events=5)
    yield events
    events.close()


def test_rows_are_listed_newest_first_and_filtered(store: EventStore) -> None:
    store.add("unlock", "ada", 0.95, when=100.0)
    store.add("stranger", None, 0.1, when=101.0)
    store.add("unlock", "bob", 0.91, when=102.0)
    assert [e.person for e in store.list()] == ["bob", None, "ada"]
    assert [e.person for e in store.list(kind="unlock")] == ["bob", "ada"]
    assert [e.kind for e in store.list(person="ada")] == ["unlock"]
    first_page = store.list(limit=2)
    assert [e.person for e in store.list(before=first_page[-1].id)] == ["ada"]
    assert store.people() == ["ada", "bob"]
    assert store.counts("unlock") == {"ada": 1, "bob": 1}
    assert store.last_time("unlock", "bob") == 102.0
    with pytest.raises(ValueError, match="unknown event kind"):
        store.add("party")


def test_sightings_within_the_window_are_merged_unlocks_never(store: EventStore) -> None:
    first, new = store.add("sighting", "ada", 0.6, when=100.0)
    assert new
    assert store.add("sighting", "ada", 0.7, when=105.0) == (first, False)
    assert store.add("sighting", "ada", 0.65, when=114.0) == (first, False)  # 9 s after the last one
    later, new = store.add("sighting", "ada", 0.6, when=125.0)
    assert new and later != first
    merged = store.get(first)
    assert (merged.count, merged.confidence, merged.time, merged.last_time) == (3, 0.7, 100.0, 114.0)
    assert store.add("sighting", "bob", 0.6, when=126.0)[1]  # another person: its own row
    assert store.add("unlock", "ada", 0.9, when=126.0)[1]
    assert store.add("unlock", "ada", 0.9, when=126.5)[1]
    assert store.add("sighting", "bob", 0.6, when=127.0)[1]  # something happened since bob's last row


def test_old_rows_and_their_pictures_are_pruned(store: EventStore) -> None:
    ids = []
    for i in range(7):
        event_id, _ = store.add("unlock", f"p{i}", 0.9, when=100.0 + i)
        store.attach_images(event_id, jpeg(10, 10), jpeg(20, 20))
        ids.append(event_id)
    assert [e.id for e in store.list(limit=50)] == ids[::-1][:5]
    assert store.image_path(ids[0]) is None and store.image_path(ids[1], frame=True) is None
    assert store.image_path(ids[-1]) is not None
    assert len(list(store.thumbs.glob("*.jpg"))) == 10


def test_the_store_survives_a_restart(tmp_path) -> None:
    store = EventStore(tmp_path)
    store.add("unlock", "ada", 0.9, when=100.0, details={"frames": 2})
    store.close()
    reopened = EventStore(tmp_path)
    (event,) = reopened.list()
    assert (event.person, event.details) == ("ada", {"frames": 2})
    reopened.close()


def test_engine_events_map_to_timeline_kinds() -> None:
    stamp = "2024-05-01 12:00:00+02:00"
    unlock = entry_from_engine({"event": "unlocked", "time": stamp, "person": "ada", "confidence": 0.93,
                                "frames": 2, "captured": 1.5})
    assert (unlock.kind, unlock.person, unlock.confidence) == ("unlock", "ada", 0.93)
    assert unlock.when == datetime.fromisoformat(stamp).timestamp()
    assert unlock.details == {"person": "ada", "confidence": 0.93, "frames": 2, "captured": 1.5}
    near = entry_from_engine({"event": "refused-unknown", "time": stamp, "best_label": "ada",
                              "best_confidence": 0.7, "faces": 1})
    assert (near.kind, near.person, near.confidence) == ("sighting", "ada", 0.7)
    far = entry_from_engine({"event": "refused-unknown", "time": stamp, "best_label": "ada",
                             "best_confidence": 0.05, "faces": 2})
    assert (far.kind, far.person, far.details["best_label"]) == ("stranger", None, "ada")
    assert entry_from_engine({"event": "recognised", "person": "ada", "confidence": 0.99}) is None
    assert entry_from_engine({"event": "something-new"}) is None
    assert entry_from_engine(["not", "a", "dict"]) is None
    odd = entry_from_engine({"event": "unlocked", "time": "yesterday", "confidence": float("nan"),
                             "person": 3})
    assert odd.confidence is None and odd.person is None and abs(odd.when - time.time()) < 5


def test_find_unlock_frame_by_the_engines_folder_name(tmp_path) -> None:
    when = time.time()
    assert find_unlock_frame(tmp_path, when) is None
    stamp = datetime.fromtimestamp(when - 1).astimezone().replace(microsecond=0).isoformat(" ")
    folder = tmp_path / "unlock-frames" / stamp
    folder.mkdir(parents=True)
    assert find_unlock_frame(tmp_path, when) is None  # no frame in it (yet)
    (folder / "frame.jpeg").write_bytes(jpeg())
    assert find_unlock_frame(tmp_path, when) == folder / "frame.jpeg"
    second = tmp_path / "unlock-frames" / f"{stamp}-2"
    second.mkdir()
    (second / "frame.jpeg").write_bytes(jpeg())
    os.utime(second, (when + 1, when + 1))
    assert find_unlock_frame(tmp_path, when) == second / "frame.jpeg"  # the newest of that second
    assert find_unlock_frame(tmp_path, when + 3600) is None


def test_thumbnails_and_jpeg_sizes() -> None:
    frame = jpeg(640, 360)
    assert jpeg_size(frame) == (640, 360)
    assert jpeg_size(b"not a jpeg") is None and jpeg_size(frame[:20]) is None
    assert jpeg_size(thumbnail_jpeg(frame, 240)) == (240, 135)
    crop = thumbnail_jpeg(frame, 240, crop=(100, 100, 140, 160))
    width, height = jpeg_size(crop)
    assert width < height <= 240
    from smartlock.errors import BadImageError

    with pytest.raises(BadImageError):
        thumbnail_jpeg(b"\xff\xd8 truncated")


def test_find_unlock_frame_prefers_the_folder_the_event_names(tmp_path) -> None:
    when = time.time()
    named = tmp_path / "unlock-frames" / "2020-01-01 00:00:00+00:00"
    named.mkdir(parents=True)
    (named / "frame.jpeg").write_bytes(b"\xff\xd8named")
    assert find_unlock_frame(tmp_path, when, named.name) == named / "frame.jpeg"
    assert find_unlock_frame(tmp_path, when, "no such folder") is None
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "frame.jpeg").write_bytes(b"\xff\xd8")
    for hostile in ("../secret", "..", ".incoming-x", "a/../../secret"):
        assert find_unlock_frame(tmp_path, when, hostile) is None
