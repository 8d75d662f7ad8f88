"""The model folder survives a crash at any point of a save: the old gallery or the new one, never neither."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smartlock.errors import ModelCorrupt, ModelError
from smartlock.recognition import store
from smartlock.recognition.recognizer import Recognizer
from tests.recognition.fakes import FakeBackend, face_image, png


class Crash(Exception):
    """Stands for the process dying: nothing after the failing step runs."""


def photo(identity: int, variation: int = 1) -> tuple[str, bytes]:
    return f"{identity}-{variation}.png", png(face_image((identity, variation)))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    recognizer = Recognizer.create(tmp_path / "model", FakeBackend())
    recognizer.enroll("alice", [photo(1, 1), photo(1, 2)])
    return tmp_path / "model"


def names(model: Path) -> list[str]:
    return list(Recognizer.load(model, FakeBackend()).people())


def crash_at(monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """Make the save die at ``step``: writing the pending embeddings, the metadata (the commit), or the
    rename of the pending embeddings after the commit."""
    write, rename = store.atomic_write, os.replace

    def atomic_write(path: Path, data: bytes) -> None:
        if path.name == {"pending": store.PENDING_EMBEDDINGS_FILE, "commit": store.METADATA_FILE}.get(step):
            raise Crash(step)
        write(path, data)

    def replace(source: str | Path, target: str | Path) -> None:
        if step == "rename" and Path(source).name == store.PENDING_EMBEDDINGS_FILE:
            raise Crash(step)
        rename(source, target)

    monkeypatch.setattr(store, "atomic_write", atomic_write)
    monkeypatch.setattr(store.os, "replace", replace)


@pytest.mark.parametrize(("step", "expected"), [
    ("pending", ["alice"]),  # before the commit: the old gallery
    ("commit", ["alice"]),
    ("rename", ["alice", "bob"]),  # after the commit: the new one, read from the pending file
])
def test_a_crash_during_a_save_leaves_a_loadable_gallery(model, monkeypatch, step, expected):
    recognizer = Recognizer.load(model, FakeBackend())
    crash_at(monkeypatch, step)
    with pytest.raises(Crash):
        recognizer.enroll("bob", [photo(2)])
    monkeypatch.undo()
    assert names(model) == expected
    # the next save (after a restart) settles what the crash left, and nothing is left over
    again = Recognizer.load(model, FakeBackend())
    again.enroll("carol", [photo(3)])
    assert names(model) == [*expected, "carol"]
    left = sorted(p.name for p in model.iterdir())
    assert left == sorted(["faces", store.EMBEDDINGS_FILE, store.METADATA_FILE])
    assert store.load_gallery(model).embeddings.shape == (len(expected) + 2, FakeBackend.embedding_size)


def test_a_pending_file_that_no_commit_names_is_ignored(model):
    (model / store.PENDING_EMBEDDINGS_FILE).write_bytes(b"PK\x03\x04 half of something")
    assert names(model) == ["alice"]


def test_missing_or_mismatched_embeddings_are_corrupt(model):
    (model / store.EMBEDDINGS_FILE).rename(model / "elsewhere.npz")
    with pytest.raises(ModelCorrupt, match="is missing"):
        store.load_gallery(model)
    (model / "elsewhere.npz").rename(model / store.PENDING_EMBEDDINGS_FILE)
    assert names(model) == ["alice"]  # the pending file is the one the metadata names


def test_a_folder_that_cannot_be_written_is_a_model_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ModelError, match="cannot save the gallery"):
        Recognizer.create(blocker / "model", FakeBackend())
