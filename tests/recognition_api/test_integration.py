"""`smartlock recognition` as a real process with a real arcface model trained on ../shared/faces."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from smartlock.recognition.client import RecognitionClient
from tests.recognition_api.conftest import Service, TrainedModel, copy_model, recognition_service
from tests.recognition_api.media import bomb_png, truncated

pytestmark = [pytest.mark.faces, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(trained_model: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One service for the read-only tests of this module, on its own copy of the trained model (started
    by default, so with the key it generated)."""
    work = tmp_path_factory.mktemp("recognition-server")
    with recognition_service(copy_model(trained_model, work), work) as service:
        yield service


# Generous: a test must not fail because the machine is busy; none of them measures speed.
TIMEOUT = 120


def top(service: Service, photo: Path) -> dict:
    response = httpx.post(f"{service.url}/face-recognition", files={"image": photo.read_bytes()},
                          headers=service.headers, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()["faces"][0]["top_prediction"]  # the largest face: the person the photo is of


def test_the_seed_client_code_path(server: Service, trained_model: TrainedModel) -> None:
    requests = pytest.importorskip("requests")
    name, probes = next(iter(trained_model.enrolled.items()))
    # Exactly what the seed's engine does with the answer (plus the key, as with $SMARTLOCK_API_KEY).
    with open(probes[0], "rb") as image:
        response = requests.post(f"{server.url}/face-recognition", files={"image": image},
                                 headers=server.headers, timeout=TIMEOUT)
    assert response.status_code == 200
    faces = response.json()["faces"]
    assert faces[0]["top_prediction"]["label"] == name
    assert faces[0]["top_prediction"]["confidence"] >= 0.8
    assert set(faces[0]["bounding_box"]) == {"left", "top", "right", "bottom"}
    assert faces[0]["all_predictions"] is None


def test_enrolled_people_are_recognized_strangers_not(server: Service, trained_model: TrainedModel) -> None:
    for name, probes in trained_model.enrolled.items():
        for probe in probes[:2]:
            prediction = top(server, probe)
            assert prediction["label"] == name and prediction["confidence"] >= 0.8, (probe, prediction)
    for stranger in trained_model.strangers:
        response = httpx.post(f"{server.url}/face-recognition", files={"image": stranger.read_bytes()},
                              headers=server.headers, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        faces = response.json()["faces"]
        assert all(face["top_prediction"]["confidence"] < 0.5 for face in faces), stranger


def test_all_predictions_lists_every_enrolled_person(server: Service, trained_model: TrainedModel) -> None:
    probe = next(iter(trained_model.enrolled.values()))[0]
    response = httpx.post(f"{server.url}/face-recognition", files={"image": probe.read_bytes()},
                          data={"include_predictions": "true"}, headers=server.headers, timeout=TIMEOUT)
    predictions = response.json()["faces"][0]["all_predictions"]
    assert sorted(p["label"] for p in predictions) == sorted(trained_model.enrolled)
    confidences = [p["confidence"] for p in predictions]
    assert confidences == sorted(confidences, reverse=True)


def _bad_inputs(face: bytes) -> dict[str, tuple[str, str, dict, int]]:
    fr = "/face-recognition"
    big = face * (21 * 2**20 // len(face) + 1)  # a real JPEG repeated past 21 MiB
    return {
        "no image field": ("POST", fr, {"data": {"include_predictions": "1"}}, 422),
        "empty file": ("POST", fr, {"files": {"image": ("a.jpg", b"")}}, 400),
        "text": ("POST", fr, {"files": {"image": ("a.txt", b"Hello!\n" * 100)}}, 400),
        "truncated JPEG of a face": ("POST", fr, {"files": {"image": truncated(face)}}, 400),
        "PNG declaring 100000x100000": ("POST", fr, {"files": {"image": bomb_png()}}, 400),
        "file over 20 MB": ("POST", fr, {"files": {"image": big}}, 413),
        "name with /": ("POST", "/people/a%2Fb/images", {"files": {"images": face}}, 400),
        "name ..": ("POST", "/people/%2E%2E/images", {"files": {"images": face}}, 400),
        "name with control character": ("POST", "/people/a%1Bb/images", {"files": {"images": face}}, 400),
        "delete person with /": ("DELETE", "/people/a%2Fb", {}, 400),
        "delete image of person ..": ("DELETE", "/people/%2E%2E/images/0123456789abcdef", {}, 400),
        "delete unknown person": ("DELETE", "/people/Nobody_Here", {}, 404),
        "delete unknown image": ("DELETE", "/people/Nobody_Here/images/0123456789abcdef", {}, 404),
    }


def test_bad_input_gets_a_4xx_with_a_message(server: Service, trained_model: TrainedModel) -> None:
    face_photo = next(iter(trained_model.enrolled.values()))[0].read_bytes()
    before = httpx.get(f"{server.url}/people", headers=server.headers, timeout=TIMEOUT).json()
    results = {}
    for case, (method, path, kwargs, status) in _bad_inputs(face_photo).items():
        response = httpx.request(method, server.url + path, headers=server.headers, timeout=TIMEOUT, **kwargs)
        results[case] = (response.status_code, response.json().get("message"))
        assert response.status_code == status, (case, response.text)
        assert isinstance(results[case][1], str) and results[case][1], case
    assert httpx.get(f"{server.url}/people", headers=server.headers, timeout=TIMEOUT).json() == before
    assert httpx.get(f"{server.url}/health", timeout=TIMEOUT).json()["status"] == "ok"  # still serving
    for case, (status, message) in results.items():
        print(f"{case:32s} {status}  {message[:70]}")


def test_odd_but_valid_images_get_an_answer(server: Service) -> None:
    """Within the size limit but of an extreme shape: a 2 x 200,000 PNG once made the retry canvas
    447 GiB (a 500). It has no face."""
    buffer = io.BytesIO()
    Image.new("RGB", (200_000, 2), (128, 128, 128)).save(buffer, "PNG")
    response = httpx.post(f"{server.url}/face-recognition", files={"image": ("strip.png", buffer.getvalue())},
                          headers=server.headers, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.json() == {"faces": []}


def test_enroll_through_the_api_then_delete(each_backend_model: TrainedModel, tmp_path: Path) -> None:
    name, photos = next(iter(each_backend_model.newcomers.items()))
    with recognition_service(copy_model(each_backend_model, tmp_path), tmp_path) as service, \
            service.client(TIMEOUT) as http:
        assert http.get("/health").json()["backend"] == each_backend_model.backend
        before = top(service, photos[3])
        assert before["label"] != name and before["confidence"] < 0.5
        answer = http.post(f"/people/{name}/images",
                           files=[("images", (p.name, p.read_bytes())) for p in photos[:3]],
                           data={"multiple_faces": "largest"}).json()
        assert answer["enrolled"] == 3, answer
        # no restart: the very next request sees the new person
        after = top(service, photos[3])
        assert after["label"] == name and after["confidence"] >= 0.8
        assert http.delete(f"/people/{name}").status_code == 200
        gone = top(service, photos[3])
        assert gone["label"] != name and gone["confidence"] < 0.5
        assert http.delete(f"/people/{name}").status_code == 404


def test_a_restart_finds_the_gallery_as_it_was_left(trained_model: TrainedModel, tmp_path: Path) -> None:
    model_dir = copy_model(trained_model, tmp_path)
    name, photos = list(trained_model.newcomers.items())[1]
    victim = sorted(trained_model.enrolled)[0]
    with recognition_service(model_dir, tmp_path) as service:
        client = RecognitionClient(f"{service.url}/face-recognition", api_key=service.key, timeout=TIMEOUT)
        assert client.enroll(name, photos[:3], multiple_faces="largest").enrolled == 3
        victim_images = next(p for p in client.people() if p.name == victim).images
        first_image = victim_images[0].image_id
        client.remove_image(victim, first_image)
        left = client.people()
        assert top(service, photos[3])["label"] == name
        key = service.key
    with recognition_service(model_dir, tmp_path) as service:
        assert service.key == key  # the key generated on the first start is kept in the model folder
        client = RecognitionClient(f"{service.url}/face-recognition", api_key=service.key, timeout=TIMEOUT)
        assert client.people() == left
        assert first_image not in str(left)
        assert client.health().people == len(trained_model.enrolled) + 1
        again = top(service, photos[3])
        assert again["label"] == name and again["confidence"] >= 0.8


def test_concurrent_enrollments_and_recognitions(trained_model: TrainedModel, tmp_path: Path) -> None:
    from smartlock.recognition.recognizer import Recognizer

    model_dir = copy_model(trained_model, tmp_path)
    known, probes = next(iter(trained_model.enrolled.items()))
    newcomers = list(trained_model.newcomers.items())
    errors: list[str] = []
    done = threading.Event()

    def recognize() -> None:
        try:
            with service.client(TIMEOUT) as http:
                for _ in range(200):  # bounded; stops early once the enrollments are done
                    response = http.post("/face-recognition", files={"image": probes[0].read_bytes()})
                    if response.status_code != 200:
                        errors.append(f"recognize: {response.status_code} {response.text}")
                    elif response.json()["faces"][0]["top_prediction"]["label"] != known:
                        errors.append(f"recognize: {response.json()['faces'][0]['top_prediction']}")
                    if done.is_set():
                        return
        except Exception as err:  # a thread's exception would otherwise vanish and the test pass
            errors.append(f"recognize: {err!r}")

    def enroll(name: str, photos: list[Path]) -> None:
        try:
            with service.client(TIMEOUT) as http:
                for photo in photos[:3]:  # one request per photo: several read-modify-writes each
                    response = http.post(f"/people/{name}/images", data={"multiple_faces": "largest"},
                                         files={"images": (photo.name, photo.read_bytes())})
                    if response.status_code != 200 or response.json()["enrolled"] != 1:
                        errors.append(f"enroll {name}: {response.status_code} {response.text}")
        except Exception as err:
            errors.append(f"enroll {name}: {err!r}")

    with recognition_service(model_dir, tmp_path) as service:
        readers = [threading.Thread(target=recognize) for _ in range(2)]
        writers = [threading.Thread(target=enroll, args=item) for item in newcomers]
        for thread in readers + writers:
            thread.start()
        for thread in writers:
            thread.join(timeout=600)
        done.set()
        for thread in readers:
            thread.join(timeout=600)
        assert not any(thread.is_alive() for thread in readers + writers)
        served = httpx.get(f"{service.url}/people", headers=service.headers, timeout=TIMEOUT).json()["people"]
    assert not errors, errors[:5]
    counts = {person["name"]: person["image_count"] for person in served}
    assert all(counts[name] == 3 for name, _ in newcomers), counts
    # what is on disk is exactly what was served: nothing lost between concurrent writers
    on_disk = Recognizer.load(model_dir).people()
    assert {name: len(images) for name, images in on_disk.items()} == counts


def test_api_key_and_empty_gallery_start(tmp_path: Path, trained_model: TrainedModel) -> None:
    key_file = tmp_path / "api.key"
    key_file.write_text("correct horse battery staple\n")
    key_file.chmod(0o600)
    model_dir = tmp_path / "new-model"  # does not exist: the service starts with an empty gallery
    with recognition_service(model_dir, tmp_path, "--api-key-file", str(key_file)) as service:
        url = service.url
        health = httpx.get(f"{url}/health", timeout=TIMEOUT).json()
        assert (health["backend"], health["people"]) == ("arcface", 0)
        assert len(health["model_hashes"]) == 2
        photo = next(iter(trained_model.enrolled.values()))[0].read_bytes()
        refused = httpx.post(f"{url}/face-recognition", files={"image": photo}, timeout=TIMEOUT)
        assert refused.status_code == 401
        assert httpx.get(f"{url}/people", headers={"X-API-Key": "wrong"}, timeout=TIMEOUT).status_code == 401
        key = {"X-API-Key": "correct horse battery staple"}
        faces = httpx.post(f"{url}/face-recognition", files={"image": photo}, headers=key,
                           timeout=TIMEOUT).json()["faces"]
        assert faces[0]["top_prediction"] == {"label": "unknown", "confidence": 0.0}
        with RecognitionClient(f"{url}/face-recognition", api_key="correct horse battery staple",
                               timeout=TIMEOUT) as client:
            outcome = client.enroll("First_Person", [("me.jpg", photo)], multiple_faces="largest")
            assert outcome.enrolled == 1
            assert client.recognize_jpeg(photo)[0].label == "First_Person"
    assert (model_dir / "gallery.json").is_file() and (model_dir / "gallery.npz").is_file()
    assert not (model_dir / "api-key").exists()  # the key given is the key: none generated beside it
