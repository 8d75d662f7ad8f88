"""The shared app factory on a real uvicorn: one error shape, 405 with Allow, body limits before parsing."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel

from smartlock.errors import BadImageError, CameraError, NotEnrolled
from smartlock.service import create_api_app
from tests.support import uvicorn_server

router = APIRouter()
seen_bodies: list[int] = []


class Item(BaseModel):
    name: str
    count: int


@router.get("/missing")
def missing() -> None:
    raise NotEnrolled("nobody called bob")


@router.get("/bad-image")
def bad_image() -> None:
    raise BadImageError("not an image")


@router.get("/camera")
def camera() -> None:
    raise CameraError("camera unplugged")


@router.get("/boom")
def boom() -> None:
    raise RuntimeError("secret internals")


@router.post("/items")
def add_item(item: Item) -> dict[str, str]:
    seen_bodies.append(len(item.name))
    return {"added": item.name}


@router.delete("/items")
def delete_items() -> dict[str, str]:
    return {}


@router.post("/small")
def small(item: Item) -> dict[str, str]:
    seen_bodies.append(len(item.name))
    return {"added": item.name}


def make_app():  # type: ignore[no-untyped-def]
    app = create_api_app(
        "test", "kit test", max_body_bytes=10_000,
        body_limit_for=lambda path: 200 if path == "/small" else 10_000,
    )
    app.include_router(router)
    return app


@pytest.fixture(scope="module")
def base_url():  # type: ignore[no-untyped-def]
    with uvicorn_server(make_app()) as url:
        yield url


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [("/missing", 404, "nobody called bob"), ("/bad-image", 400, "not an image"),
     ("/camera", 503, "camera unplugged")],
)
def test_domain_errors_answer_their_status_and_message(base_url: str, path: str, status: int,
                                                      message: str) -> None:
    response = httpx.get(base_url + path)
    assert response.status_code == status
    assert response.json() == {"message": message}


def test_unavailable_parts_say_when_to_retry(base_url: str) -> None:
    assert httpx.get(base_url + "/camera").headers["retry-after"] == "1"


def test_unexpected_errors_name_the_type_but_not_the_details(base_url: str) -> None:
    response = httpx.get(base_url + "/boom")
    assert response.status_code == 500
    assert "RuntimeError" in response.json()["message"]
    assert "secret internals" not in response.text


def test_validation_errors_have_one_line_and_details(base_url: str) -> None:
    response = httpx.post(base_url + "/items", json={"name": "x"})
    assert response.status_code == 422
    body = response.json()
    assert body["message"] == "count: Field required"
    assert body["detail"][0]["loc"] == ["body", "count"]


def test_wrong_method_lists_every_allowed_method(base_url: str) -> None:
    response = httpx.put(base_url + "/items", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, POST"
    assert "message" in response.json()


def test_unknown_path_is_a_json_404(base_url: str) -> None:
    response = httpx.get(base_url + "/nowhere")
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}


def test_declared_oversized_body_is_refused_before_the_handler(base_url: str) -> None:
    before = len(seen_bodies)
    response = httpx.post(base_url + "/small", json={"name": "x" * 500, "count": 1})
    assert response.status_code == 413
    assert "200 bytes" in response.json()["message"]
    assert len(seen_bodies) == before


def test_chunked_oversized_body_is_refused_while_reading(base_url: str) -> None:
    before = len(seen_bodies)

    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"name": "'
        for _ in range(50):
            yield b"x" * 1000
        yield b'", "count": 1}'

    response = httpx.post(base_url + "/items", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert len(seen_bodies) == before


def test_bodies_within_the_limit_reach_the_handler(base_url: str) -> None:
    response = httpx.post(base_url + "/small", json={"name": "ok", "count": 1})
    assert response.status_code == 200, response.text
    assert response.json() == {"added": "ok"}
