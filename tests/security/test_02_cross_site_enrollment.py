"""Row 2: a web page on another site cannot enroll (or remove) a face, whatever the browser holds.

Against a real `smartlock recognition`: a request carrying the key but a foreign ``Origin`` gets 403; the
multipart form post any page can make without a preflight gets 401 (it cannot carry the key header); on a
``--no-auth`` server that same form post gets 403. Each time, the gallery is unchanged; the same request
from the server's own origin (its Swagger UI) still works.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.recognition_api.conftest import Service, recognition_service

pytestmark = [pytest.mark.faces, pytest.mark.slow]

TIMEOUT = 120
EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def photo(faces_dir: Path) -> bytes:
    from tests.recognition.conftest import load_backend

    load_backend("arcface")  # the default backend of a new gallery; skips when not installed
    person = sorted(p for p in (faces_dir / "people").iterdir() if any(p.glob("*.jpg")))[0]
    return sorted(person.glob("*.jpg"))[0].read_bytes()


def form_post(service: Service, origin: str, photo: bytes,
              headers: dict[str, str] | None = None) -> httpx.Response:
    """What `<form method=post enctype=multipart/form-data action=.../people/alice/images>` on the page at
    ``origin`` sends: a "simple" request (no preflight), so no custom header unless ``headers`` adds one."""
    return httpx.post(f"{service.url}/people/alice/images",
                      files={"images": ("alice.jpg", photo, "image/jpeg")},
                      data={"multiple_faces": "largest"}, headers={"Origin": origin, **(headers or {})},
                      timeout=TIMEOUT)


def people(service: Service) -> dict:
    return httpx.get(f"{service.url}/people", headers=service.headers, timeout=TIMEOUT).json()


def test_a_foreign_origin_cannot_enroll_even_with_the_key(photo: bytes, tmp_path: Path) -> None:
    with recognition_service(tmp_path / "model", tmp_path) as service:
        assert service.key
        assert people(service) == {"people": []}
        refused = form_post(service, EVIL, photo, service.headers)
        assert refused.status_code == 403, refused.text
        assert "cross-site request refused" in refused.json()["message"]
        for origin in ("null", "http://127.0.0.1", service.url.replace("http:", "https:")):
            assert form_post(service, origin, photo, service.headers).status_code == 403, origin
        assert people(service) == {"people": []}

        # the simple form post a page can make: no key header, so 401 before anything else is looked at
        assert form_post(service, EVIL, photo).status_code == 401
        assert people(service) == {"people": []}

        # the same request from the server's own origin (its /docs page) works
        own = form_post(service, service.url, photo, service.headers)
        assert own.status_code == 200 and own.json()["enrolled"] == 1, own.text
        enrolled = people(service)
        assert [p["name"] for p in enrolled["people"]] == ["alice"]

        # and nobody's removal works cross-site either
        image_id = enrolled["people"][0]["images"][0]["image_id"]
        for path in ("/people/alice", f"/people/alice/images/{image_id}"):
            response = httpx.delete(service.url + path, headers={**service.headers, "Origin": EVIL},
                                    timeout=TIMEOUT)
            assert response.status_code == 403, response.text
        assert people(service) == enrolled


def test_a_no_auth_server_still_refuses_other_sites(photo: bytes, tmp_path: Path) -> None:
    with recognition_service(tmp_path / "model", tmp_path, "--no-auth") as service:
        assert service.key is None
        refused = form_post(service, EVIL, photo)
        assert refused.status_code == 403, refused.text
        # DNS rebinding: the attacker's name points at this server, so its page's Origin matches Host
        rebound = form_post(service, "http://rebind.evil.example", photo,
                            headers={"Host": "rebind.evil.example"})
        assert rebound.status_code == 403, rebound.text
        assert people(service) == {"people": []}
        # without Origin (curl, the seed's engine) the open server answers as it always did
        plain = httpx.post(f"{service.url}/people/alice/images", files={"images": ("a.jpg", photo)},
                           data={"multiple_faces": "largest"}, timeout=TIMEOUT)
        assert plain.json()["enrolled"] == 1
        alice = people(service)
        assert httpx.delete(f"{service.url}/people/alice", headers={"Origin": EVIL},
                            timeout=TIMEOUT).status_code == 403
        assert people(service) == alice
    log = service.log.read_text()
    assert "AUTHENTICATION IS OFF (--no-auth)" in log
    assert "refused a cross-site POST /people/alice/images from Origin 'http://evil.example'" in log
    assert not (tmp_path / "model" / "api-key").exists()
