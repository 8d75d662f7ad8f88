"""RecognitionClient: the contract through httpx.MockTransport, then end to end against a real server."""

from __future__ import annotations

import json

import httpx
import pytest

from smartlock.errors import ServiceError, ServiceRefused
from smartlock.recognition.client import RecognitionClient, base_url_of
from tests.recognition_api.conftest import Served
from tests.recognition_api.media import solid_jpeg
from tests.support import free_port

BLUE = solid_jpeg((20, 60, 200))
FACE = {
    "top_prediction": {"label": "alice", "confidence": 0.93},
    "bounding_box": {"left": 1.0, "top": 2.0, "right": 3.0, "bottom": 4.0},
    "all_predictions": None,
}


def mock_client(handler, **kwargs) -> RecognitionClient:
    return RecognitionClient("http://door-pi:5000/face-recognition", transport=httpx.MockTransport(handler),
                             **kwargs)


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("http://h:5000/face-recognition", "http://h:5000"),
        ("http://h:5000/face-recognition/", "http://h:5000"),
        ("https://h/api/face-recognition", "https://h/api"),
        ("http://h:5000/recognise", "http://h:5000"),
        ("http://h:5000", "http://h:5000"),
    ],
)
def test_base_url_is_derived_from_the_endpoint_url(url: str, base: str) -> None:
    assert base_url_of(url) == base


def test_recognize_posts_the_seed_multipart_and_returns_faces() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"faces": [FACE]})

    with mock_client(handler, api_key="k") as client:
        assert [face.model_dump() for face in client.recognize_jpeg(BLUE)] == [FACE]
        client.recognize_jpeg(BLUE, include_predictions=True)
    first, second = seen
    assert (first.method, str(first.url)) == ("POST", "http://door-pi:5000/face-recognition")
    assert first.headers["X-API-Key"] == "k"
    body = first.read()
    assert b'name="image"; filename="frame.jpg"' in body and BLUE in body
    assert b"include_predictions" not in body
    assert b'name="include_predictions"\r\n\r\ntrue' in second.read()


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>proxy error</html>"),
        httpx.Response(200, json=[FACE]),
        httpx.Response(200, json={"faces": "none"}),
        httpx.Response(200, json={"faces": [{"top_prediction": {"label": "alice"}}]}),
        httpx.Response(200, json={"faces": [{**FACE, "top_prediction": {"label": "a", "confidence": 1.5}}]}),
        httpx.Response(200, json={"faces": [{**FACE, "top_prediction": {"label": "a", "confidence": True}}]}),
        httpx.Response(200, json={"faces": [{**FACE, "bounding_box": {"left": 1}}]}),
        httpx.Response(200, json={"faces": [{**FACE, "top_prediction": {"label": 7, "confidence": 0.9}}]}),
    ],
    ids=["html", "list", "faces-not-list", "no-confidence", "confidence>1", "bool", "short-box", "label-int"],
)
def test_malformed_answers_are_service_errors(answer: httpx.Response) -> None:
    with mock_client(lambda request: answer) as client, pytest.raises(ServiceError):
        client.recognize_jpeg(BLUE)


@pytest.mark.parametrize(
    ("call", "answer"),
    [
        ("people", {"people": "none"}),
        ("people", {"people": [{"name": "a", "image_count": 1}]}),
        ("enroll", {"name": "me", "enrolled": 1}),
        ("enroll", {"name": "me", "enrolled": 1, "refused": 0, "outcomes": [{"filename": "x"}]}),
        ("health", {"status": "ok"}),
    ],
)
def test_malformed_gallery_answers_are_service_errors(call: str, answer: dict) -> None:
    with mock_client(lambda request: httpx.Response(200, json=answer)) as client, \
            pytest.raises(ServiceError, match="malformed answer"):
        client.enroll("me", [("a.jpg", BLUE)]) if call == "enroll" else getattr(client, call)()


def test_error_statuses_carry_the_message_and_code() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/face-recognition":
            return httpx.Response(400, json={"message": "not an image"})
        return httpx.Response(502, text="Bad Gateway")

    with mock_client(handler) as client:
        with pytest.raises(ServiceRefused, match="400: not an image") as caught:
            client.recognize_jpeg(b"junk")
        assert caught.value.status_code == 400
        with pytest.raises(ServiceRefused, match="502: Bad Gateway") as caught:
            client.people()
        assert caught.value.status_code == 502


def test_timeouts_and_refused_connections_are_service_errors() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with mock_client(slow, timeout=0.5) as client, pytest.raises(ServiceError, match=r"within 0\.5 s"):
        client.recognize_jpeg(BLUE)
    nobody = RecognitionClient(f"http://127.0.0.1:{free_port()}/face-recognition", timeout=2)
    with nobody, pytest.raises(ServiceError, match="ConnectError"):
        nobody.recognize_jpeg(BLUE)


def test_names_are_sent_as_one_path_segment() -> None:
    paths: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path)
        return httpx.Response(200, json={"message": "ok"})

    with mock_client(handler) as client:
        for name in ("Ana María", "a/b", "..", "x?y#z"):
            client.remove_person(name)
        client.remove_image("bob", "ab12")
    assert paths == [b"/people/Ana%20Mar%C3%ADa", b"/people/a%2Fb", b"/people/%2E%2E", b"/people/x%3Fy%23z",
                     b"/people/bob/images/ab12"]


def test_enroll_accepts_pairs_and_paths(tmp_path) -> None:
    photo = tmp_path / "me.jpg"
    photo.write_bytes(BLUE)
    captured: dict[str, bytes] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        captured["body"] = request.read()
        outcomes = [{"filename": "x", "enrolled": True, "image_id": "1", "reason": None}]
        return httpx.Response(200, json={"name": "me", "enrolled": 1, "refused": 0, "outcomes": outcomes})

    with mock_client(handler) as client:
        assert client.enroll("me", [("a.jpg", b"AAA"), photo]).enrolled == 1
        with pytest.raises(ServiceError, match="cannot read"):
            client.enroll("me", [tmp_path / "missing.jpg"])
        with pytest.raises(ServiceError, match="no photos"):
            client.enroll("me", [])
    assert captured["body"].count(b'name="images"') == 2 and b'filename="me.jpg"' in captured["body"]


def test_against_a_real_server(served: Served) -> None:
    with RecognitionClient(f"{served.url}/face-recognition") as client:
        health = client.health()
        assert (health.status, health.part, health.backend, health.people) == ("ok", "recognition", "fake", 0)
        result = client.enroll("alice", [("a.jpg", BLUE), ("b.txt", b"text")])
        assert [o.enrolled for o in result.outcomes] == [True, False]
        image_id = result.outcomes[0].image_id
        assert image_id is not None
        [face] = client.recognize_jpeg(BLUE)
        assert (face.label, face.confidence, face.box) == ("alice", 0.99, (1.0, 2.0, 30.0, 40.0))
        listed = [(p.name, p.image_count, p.images[0].source) for p in client.people()]
        assert listed == [("alice", 1, "a.jpg")]
        assert client.image_crop("alice", image_id) == BLUE
        assert json.dumps(client.calibration())
        for bad in ("a/b", "..", "x\ny"):
            with pytest.raises(ServiceRefused) as caught:
                client.enroll(bad, [("a.jpg", BLUE)])
            assert caught.value.status_code == 400, bad
        client.remove_image("alice", image_id)
        with pytest.raises(ServiceRefused) as caught:
            client.remove_person("alice")
        assert caught.value.status_code == 404  # removing the last photo removed the person
        with pytest.raises(ServiceRefused, match="400"):
            client.recognize_jpeg(b"")
