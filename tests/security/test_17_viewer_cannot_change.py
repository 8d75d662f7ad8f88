"""Row 17: a viewer's session can look but change nothing: every admin endpoint answers 403.

Attacked: the dashboard served as `up` serves it (real uvicorn on 127.0.0.1, fake recognition and door),
with an admin who enrolled someone, captured a frame and made a viewer account. The viewer calls every
route of the app that is not a read (found in the app itself, so a new one is not forgotten) plus the
important ones by name. Asserted: each answer is 403 with the viewer's message, and the gallery, the door,
the captured frames, the settings, the accounts (names, roles, epochs, passwords) and the timeline are as
they were; the audit gained exactly one "refused" row per call, and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from smartlock.web.app import create_app
from smartlock.web.routes.guards import CSRF_HEADER, SAFE_METHODS, VIEWER_REFUSED
from tests.web.conftest import CREDENTIALS, PASSWORD, USERNAME
from tests.web.fakes import jpeg
from tests.web.serve_dashboard import fake_dashboard, served

pytestmark = pytest.mark.timeout(120)

VIEWER, VIEWER_PASSWORD = "reception", "front desk password"
PHOTO = ("photos", ("ada.jpg", jpeg(), "image/jpeg"))

# the admin actions by name (the loop over the app's routes finds these and any newer ones)
NAMED = [
    ("POST", "/api/people/enroll"), ("POST", "/api/people/enroll-captures"),
    ("POST", "/api/people/enroll-collected"), ("DELETE", "/api/people?name=Ada"),
    ("DELETE", "/api/people/photo?name=Ada&image_id={image}"), ("POST", "/api/door/lock"),
    ("POST", "/api/captures"), ("DELETE", "/api/captures/{capture}"), ("PUT", "/api/settings"),
    ("POST", "/api/accounts"), ("PUT", "/api/accounts/admin/role"), ("PUT", f"/api/accounts/{VIEWER}/role"),
    ("PUT", "/api/accounts/admin/password"), ("PUT", f"/api/accounts/{VIEWER}/password"),
    ("DELETE", "/api/accounts/admin"), ("DELETE", f"/api/accounts/{VIEWER}"),
]
BODIES = {
    "/api/people/enroll-captures": {"name": "Mallory", "ids": ["{capture}"]},
    "/api/people/enroll-collected": {"name": "Mallory", "frames": ["x.jpg"]},
    "/api/settings": {"threshold": 0.5},
    "/api/accounts": {"username": "mallory", "password": "mallory password", "role": "admin"},
}


def changing_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) of the dashboard's API that is not a read, sign-in's own and the engine's
    webhook aside (path parameters as {name}), from the app's own schema."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        if not path.startswith("/api/") or path.startswith("/api/auth/"):
            continue
        found.extend((method.upper(), path) for method in sorted(operations)
                     if method.upper() not in SAFE_METHODS)
    return found


def fill(path: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        path = path.replace(f"{{{key}}}", value)
    return path


def test_a_viewer_changes_nothing(tmp_path: Path) -> None:
    dashboard = fake_dashboard(tmp_path)
    routes = changing_routes(create_app(dashboard, openapi=True))
    assert len(routes) >= 13, routes
    with served(dashboard) as url:
        admin = httpx.Client(base_url=url, headers={CSRF_HEADER: "1"}, timeout=10)
        assert admin.post("/api/auth/login", json=CREDENTIALS).status_code == 200
        enrolled = admin.post("/api/people/enroll", data={"name": "Ada"}, files=[PHOTO])
        assert enrolled.status_code == 200 and enrolled.json()["enrolled"] == 1
        image = enrolled.json()["outcomes"][0]["image_id"]
        capture = dashboard.captures.add(jpeg(color=(10, 200, 10)))  # the camera is a fake: stored directly
        new = {"username": VIEWER, "password": VIEWER_PASSWORD, "role": "viewer"}
        assert admin.post("/api/accounts", json=new).status_code == 201

        viewer = httpx.Client(base_url=url, headers={CSRF_HEADER: "1"}, timeout=10)
        assert viewer.post("/api/auth/login", json={"username": VIEWER, "password": VIEWER_PASSWORD}
                           ).status_code == 200
        assert viewer.get("/api/me").json() == {"user": VIEWER, "role": "viewer"}

        values = {"image": image, "capture": capture, "name": VIEWER, "capture_id": capture, "event_id": "1"}
        calls = [(m, fill(p, values)) for m, p in NAMED]
        for method, path in routes:
            filled = fill(path, values)
            if (method, filled) not in [(m, p.split("?")[0]) for m, p in calls]:
                calls.append((method, filled))
        assert len(calls) >= len(NAMED)

        before = snapshot(dashboard, admin)
        audit_before = dashboard.audit.list(limit=1000)
        for method, path in calls:
            body = BODIES.get(path.split("?")[0])
            if path == "/api/people/enroll":
                answer = viewer.request(method, path, data={"name": "Mallory"}, files=[PHOTO])
            elif body is not None:
                answer = viewer.request(method, path, json=fill_body(body, values))
            else:
                answer = viewer.request(method, path, json={"role": "admin", "password": "mallory password"})
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json() == {"message": VIEWER_REFUSED}, (method, path)

        assert snapshot(dashboard, admin) == before  # nothing changed
        after = dashboard.audit.list(limit=1000)
        added = after[: len(after) - len(audit_before)]
        assert after[len(added):] == audit_before
        assert [(a["user"], a["action"]) for a in added] == [(VIEWER, "refused")] * len(calls)
        assert {(a["details"]["method"], a["details"]["path"]) for a in added} == \
            {(m, p.split("?")[0]) for m, p in calls}
        # the viewer is still a viewer, and still signed in: refusals are not sign-outs
        assert viewer.get("/api/me").json() == {"user": VIEWER, "role": "viewer"}
        # nor can the first-run setup make a second admin
        token = dashboard.setup.issue()
        setup = viewer.post("/api/auth/setup", json={"token": token, "username": "mallory",
                                                     "password": "mallory password"})
        assert setup.status_code == 409
        assert snapshot(dashboard, admin) == before


def fill_body(body: dict, values: dict[str, str]) -> dict:
    return {k: ([fill(v, values) for v in value] if isinstance(value, list) else value)
            for k, value in body.items()}


def snapshot(dashboard, admin: httpx.Client) -> dict:
    """Everything a viewer's call could have changed."""
    return {
        "gallery": {name: list(images) for name, images in dashboard.recognition.people_images.items()},
        "enrolled_files": len(dashboard.recognition.enrolled_files),
        "locks": dashboard.door.locks,
        "captures": dashboard.captures.list(),
        "settings": dashboard.settings.current.model_dump(),
        "accounts": [(a.name, a.role, a.epoch) for a in dashboard.accounts.accounts()],
        "passwords": (dashboard.accounts.verify(PASSWORD, USERNAME),
                      dashboard.accounts.verify(VIEWER_PASSWORD, VIEWER),
                      dashboard.accounts.verify("mallory password", USERNAME)),
        "timeline": [e.to_api() for e in dashboard.events.list(limit=500)],
        "accounts_api": admin.get("/api/accounts").json(),
    }
