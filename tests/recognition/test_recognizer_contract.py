"""The Recognizer's contract, one suite run on every backend: the fake one on synthetic images and each
real one that loads on a handful of photos (conftest.py's ``any_backend``)."""

from __future__ import annotations

import pytest

from smartlock.errors import BadImageError, ModelCorrupt, ModelMismatch, NotEnrolled
from smartlock.recognition import store
from smartlock.recognition.backends.base import Backend
from smartlock.recognition.recognizer import RecognizedFace, Recognizer
from smartlock.recognition.schemas import Face
from tests.recognition.conftest import Photos, load_backend


def best(recognizer: Recognizer, data: bytes) -> RecognizedFace:
    faces = recognizer.recognize_bytes(data)
    assert faces, "no face found"
    return faces[0]


def test_enrolled_people_are_recognized_on_their_other_photos(
    enrolled_any: Recognizer, photos: Photos
) -> None:
    assert list(enrolled_any.people()) == sorted(photos.enroll)
    for name, probes in photos.probes.items():
        for index, probe in enumerate(probes):
            top = best(enrolled_any, probe).top
            assert top is not None and top.label == name, (name, index)
            assert top.confidence >= 0.5, (name, index, top)


def test_strangers_stay_under_one_half(enrolled_any: Recognizer, photos: Photos) -> None:
    for index, stranger in enumerate(photos.strangers):
        for face in enrolled_any.recognize_bytes(stranger):
            assert face.top is not None and face.top.confidence < 0.5, (index, face.top)


def test_the_face_contract(enrolled_any: Recognizer, photos: Photos) -> None:
    name, probes = next(iter(photos.probes.items()))
    face = best(enrolled_any, probes[0])
    answer = face.to_face()
    assert isinstance(answer, Face) and answer.all_predictions is None
    assert face.top is not None
    assert (answer.label, answer.confidence) == (name, round(face.top.confidence, 4))
    assert answer.box == tuple(round(v, 1) for v in face.box)
    left, top, right, bottom = answer.box
    assert left < right and top < bottom
    everyone = face.to_face(include_predictions=True).all_predictions
    assert everyone is not None and sorted(p.label for p in everyone) == sorted(photos.enroll)
    assert [p.confidence for p in everyone] == sorted((p.confidence for p in everyone), reverse=True)
    assert face.to_api(include_predictions=True) == face.to_face(include_predictions=True).model_dump()


def test_nobody_enrolled_gives_unknown(any_backend: Backend, photos: Photos, tmp_path) -> None:
    empty = Recognizer.create(tmp_path / "empty", any_backend)
    face = best(empty, next(iter(photos.probes.values()))[0])
    assert face.predictions == ()
    assert face.to_face().top_prediction.model_dump() == {"label": "unknown", "confidence": 0.0}
    assert empty.people() == {} and empty.calibration()["people"] == 0


def test_model_round_trip(enrolled_any: Recognizer, any_backend: Backend, photos: Photos) -> None:
    assert enrolled_any.model_dir is not None
    again = Recognizer.load(enrolled_any.model_dir, any_backend)
    assert again.people() == enrolled_any.people()
    assert again.calibration() == enrolled_any.calibration()
    probe = next(iter(photos.probes.values()))[0]
    before, after = best(enrolled_any, probe).top, best(again, probe).top
    assert before is not None and after is not None and after.label == before.label
    assert after.confidence == pytest.approx(before.confidence, abs=1e-6)


def test_removing_a_person_and_a_photo(fresh: Recognizer, any_backend: Backend, photos: Photos) -> None:
    name = sorted(photos.enroll)[1]
    images = fresh.people()[name]
    assert fresh.model_dir is not None
    fresh.remove_image(name, images[0].image_id)
    assert [i.image_id for i in fresh.people()[name]] == [i.image_id for i in images[1:]]
    assert not store.crop_path(fresh.model_dir, images[0].image_id).exists()
    fresh.remove_person(name)
    assert name not in fresh.people()
    top = best(fresh, photos.probes[name][0]).top
    assert top is not None and (top.label != name and top.confidence < 0.5)
    assert name not in Recognizer.load(fresh.model_dir, any_backend).people()
    with pytest.raises(NotEnrolled):
        fresh.remove_person(name)
    with pytest.raises(NotEnrolled):
        fresh.remove_image(sorted(photos.enroll)[0], "0123456789abcdef")


def test_face_crops_are_kept_for_the_dashboard(enrolled_any: Recognizer, photos: Photos) -> None:
    name = sorted(photos.enroll)[0]
    image = enrolled_any.people()[name][0]
    crop = enrolled_any.image_crop(name, image.image_id)
    assert crop is not None and crop[:2] == b"\xff\xd8"
    other = sorted(photos.enroll)[1]
    with pytest.raises(NotEnrolled):
        enrolled_any.image_crop(other, image.image_id)


def test_the_same_photo_is_not_enrolled_twice(fresh: Recognizer, photos: Photos) -> None:
    first, second = sorted(photos.enroll)[:2]
    photo = photos.enroll[first][0]
    [again] = fresh.enroll(first, [photo], multiple_faces="largest")
    assert not again.enrolled and again.reason is not None and "already enrolled" in again.reason
    [other] = fresh.enroll(second, [photo], multiple_faces="largest")
    assert not other.enrolled and other.reason is not None and repr(first) in other.reason


def test_no_face(fresh: Recognizer, photos: Photos) -> None:
    assert fresh.recognize_bytes(photos.no_face) == []
    [outcome] = fresh.enroll("nobody", [("landscape.jpg", photos.no_face)])
    assert not outcome.enrolled and outcome.reason == "no face" and outcome.image_id is None


def test_several_faces_side_by_side(fresh: Recognizer, photos: Photos) -> None:
    data, left_name, right_name, split = photos.pair
    faces = fresh.recognize_bytes(data)
    found = {face.top.label for face in faces if face.top is not None and face.top.confidence >= 0.5}
    assert {left_name, right_name} <= found
    boxes = sorted(faces, key=lambda f: f.box[0])
    assert boxes[0].box[2] <= split + 5 and boxes[-1].box[0] >= split - 5
    [refused] = fresh.enroll("pair", [("pair.jpg", data)])
    assert not refused.enrolled and refused.reason is not None and refused.reason.startswith("several faces")
    [largest] = fresh.enroll("pair", [("pair.jpg", data)], multiple_faces="largest")
    assert largest.enrolled and largest.reason is not None and "largest" in largest.reason


def test_a_truncated_file_is_a_bad_image(enrolled_any: Recognizer, photos: Photos) -> None:
    data = next(iter(photos.probes.values()))[0]
    with pytest.raises(BadImageError):
        enrolled_any.recognize_bytes(data[: len(data) // 3])


def test_a_corrupt_model_file_gives_a_clear_error(
    enrolled_any: Recognizer, any_backend: Backend, tmp_path
) -> None:
    assert enrolled_any.model_dir is not None
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / store.METADATA_FILE).write_bytes((enrolled_any.model_dir / store.METADATA_FILE).read_bytes())
    (broken / store.EMBEDDINGS_FILE).write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(ModelCorrupt, match="does not match"):
        Recognizer.load(broken, any_backend)
    assert store.gallery_backend(broken) == any_backend.name


def test_a_gallery_refuses_another_backend(enrolled_any: Recognizer, any_backend: Backend) -> None:
    other = load_backend("dlib" if any_backend.name == "arcface" else "arcface")
    assert enrolled_any.model_dir is not None
    with pytest.raises(ModelMismatch, match=any_backend.name):
        Recognizer.load(enrolled_any.model_dir, other)
