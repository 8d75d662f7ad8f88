"""The pause of face unlock after repeated presentation attacks, attacked through a real dashboard: nobody
signed in, a cross-site request and a viewer cannot lift it (the lockout file is untouched); the admin's
resume lifts it and is audited. The engine's analysed frame is not served to anyone signed out."""

from __future__ import annotations

import time

import httpx

from smartlock.engine.spoofing import LOCKOUT_FILE, LockoutState, write_state
from smartlock.web.routes.guards import CSRF_HEADER
from tests.web.conftest import System
from tests.web.test_accounts import VIEWER, VIEWER_PASSWORD, add_viewer, sign_in


def test_only_an_admin_resumes_face_unlock(system: System) -> None:
    path = system.tmp / "log" / LOCKOUT_FILE
    until = time.time() + 600
    write_state(path, LockoutState(attacks=[], until=until))
    paused = path.read_bytes()
    admin = system.client()
    add_viewer(admin)
    viewer = sign_in(system, VIEWER, VIEWER_PASSWORD)
    assert viewer.get("/api/door/face-unlock").json()["paused_until"] == until  # viewers may see it

    anonymous = httpx.post(f"{system.url}/api/door/face-unlock/resume", headers={CSRF_HEADER: "1"})
    cross_site = admin.post("/api/door/face-unlock/resume",
                            headers={CSRF_HEADER: "1", "Origin": "http://evil.example"})
    no_header = httpx.post(f"{system.url}/api/door/face-unlock/resume", cookies=admin.cookies)
    as_viewer = viewer.post("/api/door/face-unlock/resume")
    assert (anonymous.status_code, cross_site.status_code, no_header.status_code, as_viewer.status_code) == \
        (401, 403, 403, 403)
    assert path.read_bytes() == paused  # still paused, byte for byte
    assert httpx.get(f"{system.url}/api/door/face-unlock").status_code == 401

    resumed = admin.post("/api/door/face-unlock/resume")
    assert resumed.status_code == 200 and resumed.json()["paused_until"] is None
    actions = [(a["user"], a["action"]) for a in admin.get("/api/audit").json()["actions"]]
    assert ("admin", "resume face unlock") in actions


def test_the_engines_frames_need_a_session(system: System) -> None:
    assert httpx.get(f"{system.url}/api/live/frame.jpg").status_code == 401
    assert httpx.get(f"{system.url}/api/live/faces").status_code == 401
