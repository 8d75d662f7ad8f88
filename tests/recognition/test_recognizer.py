"""The Recognizer with the fake backend: persistence, failures, names, threads (the behaviour every backend
shares is in test_recognizer_contract.py)."""

from __future__ import annotations

import errno
import io
import json
import threading

import numpy as np
import pytest

from smartlock.errors import BadImageError, GalleryError, ModelCorrupt, ModelError, ModelMismatch, NotEnrolled
from smartlock.recognition import store
from smartlock.recognition.recognizer import Recognizer, validate_name
from tests.recognition.fakes import FakeBackend, face_image, png


def photos(identity: int, count: int = 3, first: int = 1) -> list[tuple[str, bytes]]:
    return [(f"{identity}-{v}.png", png(face_image((identity, v)))) for v in range(first, first + count)]


@pytest.fixture
def recognizer(tmp_path) -> Recognizer:
    rec = Recognizer.create(tmp_path / "model", FakeBackend())
    for identity, name in ((1, "alice"), (2, "bob"), (3, "carol")):
        outcomes = rec.enroll(name, photos(identity))
        assert all(o.enrolled for o in outcomes)
    return rec




def test_the_face_contract_of_a_known_face(recognizer):
    [face] = recognizer.recognize(face_image((1, 9)))
    answer = face.to_face()
    assert answer.top_prediction.label == "alice"
    assert 0.0 <= answer.top_prediction.confidence <= 1.0
    assert answer.bounding_box.model_dump() == {"left": 0.0, "top": 10.0, "right": 40.0, "bottom": 50.0}
    assert answer.all_predictions is None
    everyone = face.to_face(include_predictions=True).all_predictions
    assert everyone is not None and everyone[0].label == "alice" and len(everyone) == 3
    body = face.to_api(include_predictions=True)
    assert set(body) == {"top_prediction", "bounding_box", "all_predictions"}
    json.dumps(body)




def test_every_change_is_persisted(recognizer, tmp_path):
    recognizer.enroll("dave", photos(4, 2))
    again = Recognizer.load(tmp_path / "model", FakeBackend())
    assert list(again.people()) == ["alice", "bob", "carol", "dave"]
    assert [i.source for i in again.people()["dave"]] == ["4-1.png", "4-2.png"]
    assert again.calibration() == recognizer.calibration()
    [face] = again.recognize(face_image((4, 9)))
    assert face.top.label == "dave"


def test_enrolling_one_person_embeds_only_their_photos(recognizer):
    backend = recognizer.backend
    before = backend.calls
    recognizer.enroll("dave", photos(4, 2))
    assert backend.calls == before + 2
    recognizer.remove_person("alice")
    assert backend.calls == before + 2






def test_photos_without_one_clear_face(recognizer):
    no_face = np.full((64, 64, 3), 200, np.uint8)
    no_face[0, :, 0] = 0
    two = png(face_image((5, 1), (6, 1)))
    outcomes = recognizer.enroll("erin", [("none.png", png(no_face)), ("two.png", two), ("bad.jpg", b"xx")])
    assert [o.enrolled for o in outcomes] == [False, False, False]
    assert outcomes[0].reason == "no face"
    assert outcomes[1].reason == "several faces (2)"
    assert "not an image" in outcomes[2].reason
    assert "erin" not in recognizer.people()
    [largest] = recognizer.enroll("erin", [("two.png", two)], multiple_faces="largest")
    assert largest.enrolled and "largest" in largest.reason
    [face, _] = recognizer.recognize(face_image((5, 3), (6, 3)))
    assert face.top.label == "erin"




@pytest.mark.parametrize("name", ["", " ", "a/b", "..", "x..y", "tab\there", "a" * 101, " lead", "unknown"])
def test_bad_names_are_refused(recognizer, name):
    with pytest.raises(GalleryError):
        validate_name(name)
    with pytest.raises(GalleryError):
        recognizer.enroll(name, photos(9, 1))


def test_good_names():
    for name in ("alice", "Ana María", "O'Brien", "李雷", "a" * 100):
        assert validate_name(name) == name


def test_recognize_bytes_refuses_bad_images(recognizer):
    with pytest.raises(BadImageError):
        recognizer.recognize_bytes(b"\x89PNG\r\n\x1a\n broken")
    [face] = recognizer.recognize_bytes(png(face_image((3, 9))))
    assert face.top.label == "carol"


def test_model_made_by_another_backend_is_refused(recognizer, tmp_path):
    other = FakeBackend()
    other.name = "other"
    with pytest.raises(ModelMismatch, match="'fake' backend"):
        Recognizer.load(tmp_path / "model", other)
    with pytest.raises(ModelMismatch, match="other fake model files"):
        Recognizer.load(tmp_path / "model", FakeBackend({"fake.onnx": "1" * 64}))


def test_missing_model(tmp_path):
    with pytest.raises(ModelError, match="smartlock train"):
        Recognizer.load(tmp_path / "nothing", FakeBackend())


def test_corrupt_model_files(recognizer, tmp_path):
    model = tmp_path / "model"
    npz = (model / store.EMBEDDINGS_FILE).read_bytes()
    (model / store.EMBEDDINGS_FILE).write_bytes(npz[:-10])
    with pytest.raises(ModelCorrupt, match="does not match"):
        Recognizer.load(model, FakeBackend())
    (model / store.EMBEDDINGS_FILE).write_bytes(npz)
    Recognizer.load(model, FakeBackend())
    (model / store.METADATA_FILE).write_text("{not json")
    with pytest.raises(ModelCorrupt, match="not valid JSON"):
        Recognizer.load(model, FakeBackend())
    (model / store.METADATA_FILE).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ModelCorrupt, match="not a smartlock gallery"):
        Recognizer.load(model, FakeBackend())


def test_pickled_arrays_are_never_loaded(recognizer, tmp_path):
    """An .npz holding an object array (which only pickle can load) is refused, not executed."""
    model = tmp_path / "model"
    metadata = json.loads((model / store.METADATA_FILE).read_text())
    buffer = io.BytesIO()
    np.savez(buffer, embeddings=np.array([{"evil": 1}], dtype=object), image_ids=np.array(["x"]))
    data = buffer.getvalue()
    (model / store.EMBEDDINGS_FILE).write_bytes(data)
    import hashlib

    metadata["embeddings_sha256"] = hashlib.sha256(data).hexdigest()
    (model / store.METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(ModelCorrupt):
        Recognizer.load(model, FakeBackend())


def test_no_temporary_files_are_left(recognizer, tmp_path):
    leftovers = [p.name for p in (tmp_path / "model").rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_readers_always_see_a_whole_gallery(recognizer):
    """recognize() in threads while people come and go: never an error, always a consistent answer."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            for _ in range(400):
                if stop.is_set():
                    return
                [face] = recognizer.recognize(face_image((1, 9)))
                assert face.top.label == "alice" and face.top.confidence > 0.5
                labels = [p.label for p in face.predictions]
                assert len(labels) == len(set(labels))
        except BaseException as err:  # reported below
            errors.append(err)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        for round_ in range(6):
            recognizer.enroll(f"temp{round_}", photos(20 + round_, 2))
            recognizer.remove_person(f"temp{round_}")
    finally:
        stop.set()
        for thread in readers:
            thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in readers)
    assert not errors, errors[0]
    assert list(recognizer.people()) == ["alice", "bob", "carol"]


def test_enroll_many_reads_paths_one_at_a_time(recognizer, tmp_path):
    photo = tmp_path / "dave.png"
    photo.write_bytes(png(face_image((4, 1))))
    seen = []
    outcomes = recognizer.enroll_many(
        {"dave": [("dave.png", photo), ("gone.png", tmp_path / "gone.png")], "erin": photos(5, 2)},
        progress=lambda name, filename: seen.append((name, filename)),
    )
    assert [o.enrolled for o in outcomes["dave"]] == [True, False]
    assert outcomes["dave"][1].reason.startswith("cannot read")
    assert all(o.enrolled for o in outcomes["erin"])
    assert seen == [("dave", "dave.png"), ("dave", "gone.png"), ("erin", "5-1.png"), ("erin", "5-2.png")]
    assert set(recognizer.people()) == {"alice", "bob", "carol", "dave", "erin"}


@pytest.mark.parametrize("name", ["a/b", "..", "x\x1by", "unknown", ""])
def test_removing_or_reading_a_bad_name_is_a_bad_request_not_an_unknown_person(recognizer, name):
    image_id = recognizer.people()["alice"][0].image_id
    for call in (lambda: recognizer.remove_person(name), lambda: recognizer.remove_image(name, image_id),
                 lambda: recognizer.image_crop(name, image_id)):
        with pytest.raises(GalleryError) as caught:
            call()
        assert not isinstance(caught.value, NotEnrolled), caught.value
    assert list(recognizer.people()) == ["alice", "bob", "carol"]


def test_removing_everyone_leaves_a_usable_empty_gallery(recognizer, tmp_path):
    for name in list(recognizer.people()):
        recognizer.remove_person(name)
    assert recognizer.people() == {}
    calibration = recognizer.calibration()
    assert calibration["people"] == 0 and calibration["method"] == "default"
    [face] = recognizer.recognize(face_image((1, 9)))
    assert face.to_face().top_prediction.model_dump() == {"label": "unknown", "confidence": 0.0}
    again = Recognizer.load(tmp_path / "model", FakeBackend())
    assert again.people() == {}
    [outcome] = again.enroll("alice", photos(1, 1))
    assert outcome.enrolled and list(again.people()) == ["alice"]


def test_a_change_that_cannot_be_saved_changes_nothing(recognizer, tmp_path, monkeypatch):
    before = recognizer.people()

    def disk_full(path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "atomic_write", disk_full)
    with pytest.raises(ModelError, match="No space left on device"):
        recognizer.enroll("dave", photos(4, 2))
    with pytest.raises(ModelError, match="No space left on device"):
        recognizer.remove_person("alice")
    assert recognizer.people() == before
    monkeypatch.undo()
    assert Recognizer.load(tmp_path / "model", FakeBackend()).people() == before


@pytest.mark.parametrize("change", [{"slope": 0.0}, {"slope": float("nan")}, {"prior_odds": -1.0},
                                    {"intercept": float("inf")}])
def test_an_unusable_calibration_is_reported_as_corrupt(recognizer, tmp_path, change):
    path = tmp_path / "model" / store.METADATA_FILE
    metadata = json.loads(path.read_text())
    metadata["calibration"].update(change)
    path.write_text(json.dumps(metadata))
    with pytest.raises(ModelCorrupt, match="calibration"):
        Recognizer.load(tmp_path / "model", FakeBackend())


def test_concurrent_writers_lose_nothing(recognizer, tmp_path):
    """Enrollments and removals from several threads at once (the API serialises its own, the engine's
    collector or a second caller need not): every change lands, on disk as in memory."""
    errors: list[BaseException] = []

    def write(identity: int) -> None:
        try:
            name = f"writer{identity}"
            assert all(o.enrolled for o in recognizer.enroll(name, photos(identity, 3)))
            first = recognizer.people()[name][0].image_id
            recognizer.remove_image(name, first)
        except BaseException as err:  # reported below
            errors.append(err)

    writers = [threading.Thread(target=write, args=(30 + k,)) for k in range(4)]
    for thread in writers:
        thread.start()
    recognizer.remove_person("carol")
    for thread in writers:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in writers)
    assert not errors, errors[0]
    expected = {"alice": 3, "bob": 3, **{f"writer{30 + k}": 2 for k in range(4)}}
    assert {name: len(images) for name, images in recognizer.people().items()} == expected
    on_disk = Recognizer.load(tmp_path / "model", FakeBackend())
    assert on_disk.people() == recognizer.people()
    assert on_disk.calibration() == recognizer.calibration()
