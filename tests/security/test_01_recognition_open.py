"""Row 1: `smartlock recognition` started as the README shows (no key flags) is no longer open.

An attacker on the LAN posts their own photo as alice's, deletes people and downloads face crops: every
such request now gets 401, and the gallery is exactly as the owner left it. The key was generated on first
start in the model folder (0600) and appears in no log line, command line or environment.
"""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from smartlock.recognition.settings import GENERATED_KEY_FILE
from tests.recognition_api.conftest import recognition_service

pytestmark = [pytest.mark.faces, pytest.mark.slow]

TIMEOUT = 120


def photos(faces_dir: Path, count: int) -> list[Path]:
    """The first photo of ``count`` different people."""
    people = sorted(p for p in (faces_dir / "people").iterdir() if any(p.glob("*.jpg")))
    return [sorted(person.glob("*.jpg"))[0] for person in people[:count]]


def test_enrollment_deletion_and_crops_need_the_generated_key(faces_dir: Path, tmp_path: Path) -> None:
    from tests.recognition.conftest import load_backend

    load_backend("arcface")  # the default backend of a new gallery; skips when not installed
    owner_photo, attacker_photo = photos(faces_dir, 2)
    model = tmp_path / "model"
    # recognition_service runs exactly `python -m smartlock recognition --model M --host 127.0.0.1 --port P`
    with recognition_service(model, tmp_path) as service:
        key_file = model / GENERATED_KEY_FILE
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(model.stat().st_mode) == 0o700  # embeddings, crops and names: the owner's only
        assert service.key and service.key == key_file.read_text().strip()
        owner = httpx.Client(base_url=service.url, headers=service.headers, timeout=TIMEOUT)
        # the attack of the issue, on the fresh service: alice's enrollment with the attacker's photo
        refused = httpx.post(f"{service.url}/people/alice/images", data={"multiple_faces": "largest"},
                             files={"images": ("alice.jpg", attacker_photo.read_bytes())}, timeout=TIMEOUT)
        assert refused.status_code == 401, refused.text
        assert owner.get("/people").json() == {"people": []}
        # the owner enrolls bob (with the key): the attacker's targets
        enrolled = owner.post("/people/bob/images", data={"multiple_faces": "largest"},
                              files={"images": ("bob.jpg", owner_photo.read_bytes())}).json()
        assert enrolled["enrolled"] == 1, enrolled
        before = owner.get("/people").json()
        image_id = before["people"][0]["images"][0]["image_id"]
        crop = owner.get(f"/people/bob/images/{image_id}")
        assert crop.status_code == 200 and crop.content[:2] == b"\xff\xd8"

        attacks = [
            ("POST", "/people/alice/images", {"files": {"images": ("me.jpg", attacker_photo.read_bytes())},
                                              "data": {"multiple_faces": "largest"}}),
            ("POST", "/people/bob/images", {"files": {"images": ("me.jpg", attacker_photo.read_bytes())}}),
            ("DELETE", "/people/bob", {}),
            ("DELETE", f"/people/bob/images/{image_id}", {}),
            ("GET", f"/people/bob/images/{image_id}", {}),
            ("GET", "/people", {}),
            ("GET", "/people/bob", {}),
            ("POST", "/face-recognition", {"files": {"image": attacker_photo.read_bytes()}}),
            ("GET", "/metrics", {}),
            ("GET", "/calibration", {}),
        ]
        for headers in ({}, {"X-API-Key": "guess"}, {"X-API-Key": ""}, {"X-API-Key": service.key[:-1]}):
            for method, path, kwargs in attacks:
                response = httpx.request(method, service.url + path, headers=headers, timeout=TIMEOUT,
                                         **kwargs)
                assert response.status_code == 401, (headers, method, path, response.text)
                assert response.content[:2] != b"\xff\xd8" and "bob" not in response.text
        # nothing changed: nobody named alice, bob with his one photo, his crop as it was
        assert owner.get("/people").json() == before
        assert owner.get(f"/people/bob/images/{image_id}").content == crop.content
        # liveness and the docs stay open (they hold nothing secret)
        assert httpx.get(f"{service.url}/health", timeout=TIMEOUT).json()["people"] == 1
        assert httpx.get(f"{service.url}/docs", timeout=TIMEOUT).status_code == 200
        # the key is in no command line and no environment of the process
        for part in ("cmdline", "environ"):
            assert service.key.encode() not in Path(f"/proc/{service.pid}/{part}").read_bytes(), part
        owner.close()
    log = service.log.read_text()
    assert str(key_file.absolute()) in log  # where the key is, said once at start...
    assert service.key not in log  # ...and never the key itself
