"""The API layer on a real uvicorn with a fake recognizer: contract, enrollment, bad input, auth, metrics."""

from __future__ import annotations

import errno
import logging

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from smartlock import __version__
from smartlock.recognition import store
from smartlock.recognition.api import create_app
from smartlock.recognition.metrics import ApiMetrics
from smartlock.recognition.recognizer import Recognizer
from tests.recognition.fakes import FakeBackend, face_image, png
from tests.recognition_api.conftest import Served
from tests.recognition_api.fakes import FakeRecognizer
from tests.recognition_api.media import bomb_png, multipart_stream, solid_jpeg, truncated
from tests.support import uvicorn_server

BLUE = solid_jpeg((20, 60, 200))
GREEN = solid_jpeg((20, 200, 60))
NO_FACE = solid_jpeg((0, 0, 0))
TWO_FACES = solid_jpeg((255, 255, 255))


def enroll(served: Served, name: str, *photos: tuple[str, bytes]) -> httpx.Response:
    return served.http.post(f"/people/{name}/images", files=[("images", photo) for photo in photos])


def test_no_face_and_nobody_enrolled(served: Served) -> None:
    assert served.http.post("/face-recognition", files={"image": NO_FACE}).json() == {"faces": []}
    faces = served.http.post("/face-recognition", files={"image": BLUE}).json()["faces"]
    assert faces == [
        {
            "top_prediction": {"label": "unknown", "confidence": 0.0},
            "bounding_box": {"left": 1.0, "top": 2.0, "right": 30.0, "bottom": 40.0},
            "all_predictions": None,
        }
    ]


def test_enroll_is_effective_for_the_next_request(served: Served) -> None:
    answer = enroll(served, "alice", ("a.jpg", BLUE), ("dark.jpg", NO_FACE), ("group.jpg", TWO_FACES),
                    ("notes.txt", b"not an image"))
    assert answer.status_code == 200
    body = answer.json()
    assert (body["name"], body["enrolled"], body["refused"]) == ("alice", 1, 3)
    outcomes = body["outcomes"]
    assert [o["filename"] for o in outcomes] == ["a.jpg", "dark.jpg", "group.jpg", "notes.txt"]
    assert outcomes[0]["enrolled"] and outcomes[0]["image_id"] and outcomes[0]["reason"] is None
    assert [o["reason"] for o in outcomes[1:3]] == ["no face", "several faces"]
    assert "not an image" in outcomes[3]["reason"] and outcomes[3]["image_id"] is None

    top = served.http.post("/face-recognition", files={"image": BLUE}).json()["faces"][0]["top_prediction"]
    assert top == {"label": "alice", "confidence": 0.99}
    people = served.http.get("/people").json()["people"]
    assert people == [{"name": "alice", "image_count": 1,
                       "images": [{"image_id": outcomes[0]["image_id"], "source": "a.jpg"}]}]
    assert served.http.get("/people/alice").json() == people[0]
    crop = served.http.get(f"/people/alice/images/{outcomes[0]['image_id']}")
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg" and crop.content == BLUE


def test_include_predictions_as_form_field_or_query(served: Served) -> None:
    enroll(served, "alice", ("a.jpg", BLUE))
    enroll(served, "bob", ("b.jpg", GREEN))
    plain = served.http.post("/face-recognition", files={"image": GREEN}).json()["faces"][0]
    assert plain["all_predictions"] is None
    expected = [{"label": "bob", "confidence": 0.99}, {"label": "alice", "confidence": 0.01}]
    form = served.http.post("/face-recognition", files={"image": GREEN}, data={"include_predictions": "true"})
    assert form.json()["faces"][0]["all_predictions"] == expected
    query = served.http.post("/face-recognition?include_predictions=1", files={"image": GREEN})
    assert query.json()["faces"][0]["all_predictions"] == expected
    off = served.http.post("/face-recognition", files={"image": GREEN}, data={"include_predictions": "false"})
    assert off.json()["faces"][0]["all_predictions"] is None


def test_remove_image_then_person(served: Served) -> None:
    outcomes = enroll(served, "carol", ("1.jpg", BLUE), ("2.jpg", GREEN)).json()["outcomes"]
    ids = [o["image_id"] for o in outcomes]
    assert served.http.delete(f"/people/carol/images/{ids[0]}").status_code == 200
    assert [i["image_id"] for i in served.http.get("/people/carol").json()["images"]] == [ids[1]]
    label = served.http.post("/face-recognition", files={"image": BLUE}).json()["faces"][0]["top_prediction"]
    assert label["confidence"] < 0.5  # the removed photo no longer matches
    assert served.http.delete("/people/carol").status_code == 200
    assert served.http.get("/people").json() == {"people": []}
    assert served.http.get("/people/carol").status_code == 404


FR = "/face-recognition"
BIG = b"\xff" * (21 * 2**20)


def image(data: bytes, filename: str = "a.jpg", **form: str) -> dict:
    return {"files": {"image": (filename, data)}, "data": form}


def photos(data: bytes, **form: str) -> dict:
    return {"files": {"images": ("a.jpg", data)}, "data": form}


BAD_INPUTS = {
    # name: (method, path, request kwargs, expected status)
    "no image field": ("POST", FR, {"data": {"include_predictions": "true"}}, 422),
    "image sent as a text field": ("POST", FR, {"data": {"image": "hello"}}, 422),
    "empty file": ("POST", FR, image(b""), 400),
    "text file": ("POST", FR, image(b"hello, world\n" * 50, "a.txt"), 400),
    "truncated JPEG": ("POST", FR, image(truncated(solid_jpeg((9, 9, 9), (640, 360)))), 400),
    "PNG declaring 100000x100000": ("POST", FR, image(bomb_png(), "bomb.png"), 400),
    "21 MiB file": ("POST", FR, image(BIG), 413),
    "not multipart at all": ("POST", FR, {"content": BLUE, "headers": {"content-type": "image/jpeg"}}, 422),
    "bad include_predictions": ("POST", FR, image(BLUE, include_predictions="maybe"), 422),
    "name with /": ("POST", "/people/a%2Fb/images", photos(BLUE), 400),
    "name ..": ("POST", "/people/%2E%2E/images", photos(BLUE), 400),
    "name with ..": ("POST", "/people/x%2E%2Ey/images", photos(BLUE), 400),
    "name with newline": ("POST", "/people/eve%0A/images", photos(BLUE), 400),
    "name with NUL": ("POST", "/people/eve%00x/images", photos(BLUE), 400),
    "empty name": ("POST", "/people//images", photos(BLUE), 422),
    "enroll without images": ("POST", "/people/dave/images", {"data": {"x": "1"}}, 422),
    "enroll 21 MiB photo": ("POST", "/people/dave/images", photos(BIG), 413),
    "bad multiple_faces": ("POST", "/people/dave/images", photos(BLUE, multiple_faces="all"), 422),
    "delete unknown person": ("DELETE", "/people/nobody", {}, 404),
    "delete unknown image": ("DELETE", "/people/nobody/images/0123456789abcdef", {}, 404),
    "delete person with /": ("DELETE", "/people/a%2Fb", {}, 400),
    "delete image of person ..": ("DELETE", "/people/%2E%2E/images/0123456789abcdef", {}, 400),
    "read person with control character": ("GET", "/people/eve%07", {}, 400),
    "unknown path": ("GET", "/nothing-here", {}, 404),
    "wrong method": ("GET", FR, {}, 405),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_a_clear_4xx(served: Served, case: str) -> None:
    method, path, kwargs, status = BAD_INPUTS[case]
    response = served.http.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    message = response.json()["message"]
    assert isinstance(message, str) and message
    assert served.recognizer.people() == {}  # nothing was enrolled by a refused request


def test_messages_say_what_is_wrong(served: Served) -> None:
    missing = served.http.post("/face-recognition", data={"include_predictions": "true"}).json()
    assert missing["message"] == "image: Field required" and missing["detail"][0]["loc"] == ["body", "image"]
    assert "too large" in served.http.post("/face-recognition", files={"image": bomb_png()}).json()["message"]
    assert "empty" in served.http.post("/face-recognition", files={"image": b""}).json()["message"]
    assert "20,971,520 bytes" in served.http.post(
        "/face-recognition", files={"image": b"\0" * (20 * 2**20 + 1)}).json()["message"]


def test_an_image_of_exactly_the_limit_is_accepted(served: Served) -> None:
    # 20 MiB of JPEG with padding after the end marker: over the limit by nothing, so it is decoded.
    padded = BLUE + b"\0" * (20 * 2**20 - len(BLUE))
    assert served.http.post("/face-recognition", files={"image": padded}).status_code == 200


def test_oversized_body_without_content_length_is_cut_off(served: Served) -> None:
    headers = {"content-type": "multipart/form-data; boundary=smartlockXYZ"}
    small = served.http.post(FR, content=multipart_stream("image", "a.jpg", 1000), headers=headers)
    assert small.request.headers.get("transfer-encoding") == "chunked"
    assert small.status_code == 400  # 1000 bytes of 0xff: read whole, refused as not an image
    big = served.http.post("/face-recognition", content=multipart_stream("image", "a.jpg", 40 * 2**20),
                           headers=headers)
    assert big.status_code == 413 and "too large" in big.json()["message"]


def test_names_that_cannot_be_enrolled_are_refused_by_every_route(served: Served) -> None:
    """A path-ish name is bad input (400) wherever it appears, not an unknown person (404)."""
    enroll(served, "alice", ("a.jpg", BLUE))
    for name in ("eve%07", "a%2Fb", "%2E%2E", "x%0Ay", "a%5Cb", "unknown"):
        for method, path in (("DELETE", f"/people/{name}"), ("GET", f"/people/{name}"),
                             ("DELETE", f"/people/{name}/images/0123456789abcdef"),
                             ("GET", f"/people/{name}/images/0123456789abcdef")):
            response = served.http.request(method, path)
            assert response.status_code == 400, (method, path, response.text)
            assert "name" in response.json()["message"], (method, path)
    assert served.http.delete("/people/bob").status_code == 404  # a good name not enrolled: 404
    assert [p["name"] for p in served.http.get("/people").json()["people"]] == ["alice"]


def test_a_gallery_that_cannot_be_saved_answers_503_and_changes_nothing(tmp_path, monkeypatch) -> None:
    """A real Recognizer (fake backend) whose disk is full: the enrollment is refused with a 503 that
    says why, and neither the served nor the saved gallery changes."""
    recognizer = Recognizer.create(tmp_path / "model", FakeBackend())

    def disk_full(path: object, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "atomic_write", disk_full)
    photo = ("a.png", png(face_image((1, 1))))
    with uvicorn_server(create_app(recognizer)) as url:
        response = httpx.post(f"{url}/people/alice/images", files={"images": photo}, timeout=30)
        assert response.status_code == 503, response.text
        assert "No space left on device" in response.json()["message"]
        assert httpx.get(f"{url}/people", timeout=30).json() == {"people": []}
    monkeypatch.undo()
    assert Recognizer.load(tmp_path / "model", FakeBackend()).people() == {}


class Exploding(FakeRecognizer):
    def recognize_bytes(self, data: bytes) -> list:
        raise RuntimeError("kaboom")


def test_an_unexpected_error_still_answers_json_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="smartlock.recognition.api"), \
            uvicorn_server(create_app(Exploding())) as url:
        response = httpx.post(f"{url}/face-recognition", files={"image": BLUE}, timeout=30)
        assert response.status_code == 500
        assert "RuntimeError" in response.json()["message"]
        assert httpx.get(f"{url}/health", timeout=30).status_code == 200  # the server lives on
    assert any(record.exc_info and "kaboom" in str(record.exc_info[1]) for record in caplog.records)


GUARDED = (("POST", FR), ("GET", "/people"), ("GET", "/metrics"), ("DELETE", "/people/x"),
           ("POST", "/people/x/images"), ("GET", "/calibration"), ("GET", "/people/x"))


def test_api_key_guards_everything_but_health() -> None:
    with uvicorn_server(create_app(FakeRecognizer(), api_key="s3cret")) as url:
        assert httpx.get(f"{url}/health").status_code == 200
        for key in (None, "wrong", "S3CRET", "s3cre", "s3cret2"):
            headers = {"X-API-Key": key} if key is not None else {}
            for method, path in GUARDED:
                kwargs = {"files": {"image": BLUE, "images": BLUE}} if method == "POST" else {}
                response = httpx.request(method, url + path, headers=headers, **kwargs)
                assert response.status_code == 401, (key, path)
                assert "X-API-Key" in response.json()["message"]
        good = {"X-API-Key": "s3cret"}
        assert httpx.post(f"{url}/face-recognition", files={"image": BLUE}, headers=good).status_code == 200
        assert httpx.get(f"{url}/people", headers=good).json() == {"people": []}
        assert httpx.get(f"{url}/metrics", headers=good).status_code == 200


@pytest.mark.parametrize("key", ["", "clé", "tab\tkey", " padded "])
def test_unusable_api_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="API key"):
        create_app(FakeRecognizer(), api_key=key)


def test_an_unauthenticated_upload_is_refused_before_it_is_parsed() -> None:
    recognizer = FakeRecognizer()
    with uvicorn_server(create_app(recognizer, api_key="k")) as url:
        big = {"files": {"image": ("a.jpg", b"\xff" * (15 * 2**20))}}
        response = httpx.post(f"{url}/face-recognition", **big, timeout=60)
        assert response.status_code == 401
        chunked = httpx.post(f"{url}/people/x/images", content=multipart_stream("images", "a.jpg", 2**20),
                             headers={"content-type": "multipart/form-data; boundary=smartlockXYZ"})
        assert chunked.status_code == 401
    assert recognizer.calls == [] and recognizer.people() == {}


def test_health_and_calibration(served: Served) -> None:
    enroll(served, "alice", ("a.jpg", BLUE), ("b.jpg", GREEN))
    assert served.http.get("/health").json() == {
        "status": "ok", "part": "recognition", "version": __version__, "problems": [], "backend": "fake",
        "people": 1, "images": 2, "model_hashes": {"fake.onnx": "0" * 64},
    }
    # numpy values become plain JSON, NaN becomes null
    assert served.http.get("/calibration").json() == {
        "genuine_scores": [0.7, 0.8],
        "impostor_scores": [0.1, None],
        "false_accept_at": {"0.8": pytest.approx(0.001)},
    }


def _sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"no sample {name} {labels} in\n{text}")


def test_metrics_count_requests_latency_and_faces(served: Served) -> None:
    served.http.post("/face-recognition", files={"image": BLUE})
    served.http.post("/face-recognition", files={"image": BLUE})
    served.http.post("/face-recognition", files={"image": NO_FACE})
    served.http.post("/face-recognition", files={"image": b"junk"})
    served.http.delete("/people/nobody")
    served.http.get("/no/such/path")
    text = served.http.get("/metrics").text
    requests = "smartlock_recognition_requests_total"
    assert _sample(text, requests, endpoint="/face-recognition", status="200", method="POST") == 3
    assert _sample(text, requests, endpoint="/face-recognition", status="400") == 1
    assert _sample(text, requests, endpoint="/people/{name:person}", status="404", method="DELETE") == 1
    assert _sample(text, requests, endpoint="unmatched", status="404") == 1
    assert _sample(text, "smartlock_recognition_request_duration_seconds_count", endpoint=FR) == 4
    assert _sample(text, "smartlock_recognition_faces_per_image_count") == 3
    assert _sample(text, "smartlock_recognition_faces_per_image_bucket", le="0.0") == 1
    assert _sample(text, "smartlock_recognition_faces_per_image_sum") == 2
    assert _sample(text, "smartlock_recognition_people") == 0


def test_each_app_has_its_own_metrics() -> None:
    first, second = ApiMetrics(), ApiMetrics()
    first.faces.observe(1)
    assert first.registry is not second.registry
    assert b"faces_per_image_count 1.0" in first.render()[0]
    assert b"faces_per_image_count 0.0" in second.render()[0]


def test_openapi_documents_the_contract(served: Served) -> None:
    schema = served.http.get("/openapi.json").json()
    operation = schema["paths"]["/face-recognition"]["post"]
    assert set(operation["responses"]) >= {"200", "400", "413", "422"}
    face = schema["components"]["schemas"]["Face"]
    assert set(face["properties"]) == {"top_prediction", "bounding_box", "all_predictions"}
    assert {"/people", "/people/{name}/images", "/people/{name}", "/people/{name}/images/{image_id}",
            "/health", "/metrics"} <= set(schema["paths"])
    assert "securitySchemes" not in schema["components"]  # no key configured: none is documented
    assert "401" not in operation["responses"]
    assert served.http.get("/docs").status_code == 200
    with uvicorn_server(create_app(FakeRecognizer(), api_key="k")) as url:
        keyed = httpx.get(f"{url}/openapi.json").json()
    assert keyed["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key",
        "description":
            "The key in the server's --api-key-file (default: MODEL_DIR/api-key, made on first start).",
    }
    assert "401" in keyed["paths"]["/face-recognition"]["post"]["responses"]
    assert "security" not in keyed["paths"]["/health"]["get"]


def test_405_lists_every_method_of_the_path(served: Served) -> None:
    response = served.http.request("PUT", "/people/alice")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET"
    assert served.http.request("PUT", "/people/alice/images").headers["allow"] == "POST"
    assert served.http.request("PUT", "/people/alice/images/ab").headers["allow"] == "DELETE, GET"
    for method in ("GET", "DELETE"):  # not a person named "alice/images"
        response = served.http.request(method, "/people/alice/images")
        assert (response.status_code, response.headers["allow"]) == (405, "POST"), response.text
    assert served.http.post("/people/alice").headers["allow"] == "DELETE, GET"
