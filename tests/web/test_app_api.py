"""The dashboard's data API against the real camera app (a still-picture source) and fake recognition and
door clients."""

from __future__ import annotations

import io
import json
import time
from datetime import datetime

from PIL import Image

from smartlock.camera.mjpeg import iter_multipart
from smartlock.engine.files import collected_path, crop_name, write_collected, write_unlock_frame
from tests.support import wait_for
from tests.web.conftest import WEBHOOK_TOKEN, System
from tests.web.fakes import jpeg

FACE = {"top_prediction": {"label": "ada", "confidence": 0.97},
        "bounding_box": {"left": 40.0, "top": 30.0, "right": 120.0, "bottom": 130.0}, "all_predictions": None}


def _image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def test_camera_proxy_passes_the_token_and_streams(system: System) -> None:
    client = system.client()
    snapshot = client.get("/api/camera/snapshot.jpg")
    assert snapshot.status_code == 200 and snapshot.headers["content-type"] == "image/jpeg"
    assert _image_size(snapshot.content) == (320, 240)
    with client.stream("GET", "/api/camera/stream.mjpg") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("multipart/x-mixed-replace")
        parts = iter_multipart(response.iter_raw(), "FRAME")  # the camera's stream never ends: take three
        frames = [next(parts) for _ in range(3)]
    assert all(headers["content-type"] == "image/jpeg" for headers, _ in frames)
    assert all(body == snapshot.content for _, body in frames)  # the camera's frames, byte for byte
    health = client.get("/api/camera/health").json()
    assert (health["state"], health["source"], health["nominal_fps"]) == ("ok", "still picture", 24.0)


def test_camera_down_is_a_502_with_a_message(system: System) -> None:
    from smartlock.web.clients import CameraLink

    system.dashboard.camera = CameraLink("http://127.0.0.1:9", None)  # nothing listens on port 9
    system.dashboard.live.camera = system.dashboard.camera
    client = system.client()
    for path in ("/api/camera/snapshot.jpg", "/api/camera/stream.mjpg", "/api/live/faces"):
        response = client.get(path)
        assert response.status_code == 502
        assert "camera" in response.json()["message"]


def test_live_faces_are_recognized_on_the_latest_frame(system: System) -> None:
    system.recognition.seen = [FACE]
    system.dashboard.live.min_interval = 0.0
    answer = system.client().get("/api/live/faces").json()
    assert answer["width"] == 320 and answer["height"] == 240
    assert answer["faces"] == [{"label": "ada", "confidence": 0.97, "box": FACE["bounding_box"]}]
    assert answer["threshold"] == 0.8
    assert "jpeg" not in answer


def test_live_faces_are_shared_between_viewers(system: System) -> None:
    system.dashboard.live.min_interval = 60.0
    client = system.client()
    for _ in range(5):
        assert client.get("/api/live/faces").status_code == 200
    assert system.recognition.recognitions == 1


def test_recognition_down_is_a_502(system: System) -> None:
    system.recognition.down = True
    client = system.client()
    for path in ("/api/people", "/api/live/faces", "/api/calibration"):
        response = client.get(path)
        assert response.status_code == 502
        assert "refused" in response.json()["message"]


def test_door_status_and_lock_now(system: System) -> None:
    client = system.client()
    system.door.remaining = 2.5
    assert client.get("/api/door/status").json()["locked"] is False
    response = client.post("/api/door/lock")
    assert response.status_code == 200 and response.json()["locked"] is True
    assert system.door.locks == 1
    events = client.get("/api/events?kind=lock").json()["events"]
    assert len(events) == 1 and events[0]["details"] == {"by": "dashboard"}
    assert client.get("/api/door/events?limit=5").json()["events"][0]["action"] == "lock"
    system.door.down = True
    failed = client.post("/api/door/lock")
    assert failed.status_code == 502 and "did not answer" in failed.json()["message"]


def test_enroll_by_upload_reports_each_photo(system: System) -> None:
    client = system.client()
    files = [("photos", ("one.jpg", jpeg(color=(1, 2, 3)), "image/jpeg")),
             ("photos", ("two.jpg", jpeg(color=(4, 5, 6)), "image/jpeg")),
             ("photos", ("noface.jpg", jpeg(color=(7, 8, 9)), "image/jpeg")),
             ("photos", ("crowd.jpg", jpeg(color=(9, 9, 9)), "image/jpeg"))]
    response = client.post("/api/people/enroll", data={"name": "Ada Lovelace"}, files=files)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["enrolled"] == 2 and result["refused"] == 2
    reasons = {o["filename"]: o["reason"] for o in result["outcomes"] if not o["enrolled"]}
    assert reasons == {"noface.jpg": "no face", "crowd.jpg": "several faces (2)"}
    people = client.get("/api/people").json()["people"]
    assert [(p["name"], p["image_count"], p["unlocks"]) for p in people] == [("Ada Lovelace", 2, 0)]
    assert {name for name, _, _ in system.recognition.enrolled_files} == {"Ada Lovelace"}


def test_enroll_needs_a_name_and_photos(system: System) -> None:
    client = system.client()
    no_name = client.post("/api/people/enroll", data={"name": " "},
                          files=[("photos", ("a.jpg", jpeg(), "image/jpeg"))])
    assert no_name.status_code == 400 and "name" in no_name.json()["message"]
    no_photo = client.post("/api/people/enroll", data={"name": "ada"})
    assert no_photo.status_code == 400 and "photo" in no_photo.json()["message"]
    bad_name = client.post("/api/people/enroll", data={"name": "a/b"},
                           files=[("photos", ("a.jpg", jpeg(), "image/jpeg"))])
    assert bad_name.status_code == 400 and bad_name.json()["message"] == "bad name 'a/b'"


def test_remove_photo_and_person(system: System) -> None:
    client = system.client()
    client.post("/api/people/enroll", data={"name": "ada"},
                files=[("photos", (f"{i}.jpg", jpeg(color=(i, i, i)), "image/jpeg")) for i in range(2)])
    images = client.get("/api/people").json()["people"][0]["images"]
    gone = client.delete("/api/people/photo", params={"name": "ada", "image_id": images[0]["image_id"]})
    assert gone.status_code == 200
    assert client.get("/api/people").json()["people"][0]["image_count"] == 1
    missing = client.delete("/api/people/photo", params={"name": "ada", "image_id": "ffff"})
    assert missing.status_code == 404 and missing.json()["message"] == "no such image"
    assert client.delete("/api/people", params={"name": "ada"}).status_code == 200
    assert client.get("/api/people").json()["people"] == []
    again = client.delete("/api/people", params={"name": "ada"})
    assert again.status_code == 404 and "not enrolled" in again.json()["message"]


def test_person_photo_is_the_crop_kept_by_the_recognizer(system: System) -> None:
    system.recognition.crops["0123456789abcdef"] = jpeg(50, 50)  # asked of the recognizer, not read from disk
    client = system.client()
    ok = client.get("/api/people/photo.jpg", params={"name": "ada", "image_id": "0123456789abcdef"})
    assert ok.status_code == 200 and _image_size(ok.content) == (50, 50)
    for image_id in ("../../etc/passwd", "fedcba9876543210"):
        missing = client.get("/api/people/photo.jpg", params={"name": "ada", "image_id": image_id})
        assert missing.status_code == 404


def test_enroll_frames_taken_from_the_live_view(system: System) -> None:
    client = system.client()
    taken = [client.post("/api/captures").json()["id"] for _ in range(3)]
    listed = [c["id"] for c in client.get("/api/captures").json()["captures"]]
    assert sorted(listed) == sorted(taken)
    assert _image_size(client.get(f"/api/captures/{taken[0]}.jpg").content) == (320, 240)
    result = client.post("/api/people/enroll-captures", json={"name": "ada", "ids": taken[:2]}).json()
    assert result["enrolled"] == 2
    assert [c["id"] for c in client.get("/api/captures").json()["captures"]] == [taken[2]]  # used ones go
    assert [f[1] for f in system.recognition.enrolled_files] == [f"capture-{i}.jpg" for i in taken[:2]]
    bad = client.post("/api/people/enroll-captures", json={"name": "ada", "ids": ["../x"]})
    assert bad.status_code == 404
    assert client.post("/api/people/enroll-captures", json={"name": "ada", "ids": []}).status_code == 400
    assert client.delete(f"/api/captures/{taken[2]}").status_code == 200
    assert taken[2] not in [c["id"] for c in client.get("/api/captures").json()["captures"]]


def _collected(system: System, label: str, confidence: float, crop: bool) -> str:
    """A frame saved as `smartlock collect` saves it (through the engine's own writer)."""
    folder = system.tmp / "collected"
    folder.mkdir(exist_ok=True)
    frame = collected_path(folder, label, confidence)
    face_crop = crop_name(frame, 1) if crop else None
    faces = [{"top_prediction": {"label": label, "confidence": confidence}, "in_band": True,
              "crop": face_crop}]
    write_collected(frame, jpeg(color=(int(confidence * 100), 1, 2)), {"frame": frame.name, "faces": faces},
                    {face_crop: jpeg(60, 60, color=(3, 2, 1))} if face_crop else None)
    return frame.name


def test_enroll_frames_the_collector_saved(system: System) -> None:
    client = system.client()
    one = _collected(system, "ada", 0.71, crop=True)
    listed = client.get("/api/collected").json()["frames"]
    assert [(f["name"], f["label"], f["confidence"]) for f in listed] == [(one, "ada", 0.71)]
    assert listed[0]["thumb"].endswith(".face-1.jpeg")
    assert client.get(listed[0]["image"]).status_code == 200
    assert client.get(listed[0]["thumb"]).status_code == 200
    result = client.post("/api/people/enroll-collected", json={"name": "ada", "frames": [one]}).json()
    assert result["enrolled"] == 1
    assert client.post("/api/people/enroll-collected",
                       json={"name": "ada", "frames": ["../secrets/x.jpeg"]}).status_code == 404


def test_a_crowded_collected_frame_falls_back_to_its_face_crop(system: System) -> None:
    client = system.client()
    crowd = _collected(system, "crowd", 0.65, crop=True)  # the fake refuses *crowd* files: several faces
    result = client.post("/api/people/enroll-collected", json={"name": "ada", "frames": [crowd]}).json()
    assert result["enrolled"] == 1
    assert result["outcomes"][0]["filename"] == crowd
    assert "face crop" in result["outcomes"][0]["reason"]
    assert system.recognition.enrolled_files[-1][1].endswith(".face-1.jpeg")


def test_engine_webhook_needs_its_secret(system: System) -> None:
    client = system.client(signed_in=False)
    event = {"event": "unlocked", "person": "ada", "confidence": 0.9}
    hook = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    assert client.post(f"/hooks/engine/{WEBHOOK_TOKEN}", json=event).status_code == 404  # never in the URL
    assert client.post("/hooks/engine", content=b"{not json", headers=hook).status_code == 400
    assert client.post("/hooks/engine", content=b"x" * 70_000, headers=hook).status_code == 413
    assert system.dashboard.events.list() == []


def test_engine_webhook_with_a_bearer_token(system: System) -> None:
    client = system.client(signed_in=False)
    event = {"event": "unlocked", "person": "ada", "confidence": 0.9}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {WEBHOOK_TOKEN}"},
                    {"Authorization": "Bearer"}):
        assert client.post("/hooks/engine", json=event, headers=headers).status_code == 404, headers
    assert system.dashboard.events.list() == []
    answer = client.post("/hooks/engine", json=event, headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"})
    assert answer.status_code == 200 and answer.json()["recorded"] is True
    assert [row.person for row in system.dashboard.events.list()] == ["ada"]


def test_an_unlock_event_gets_the_frame_the_engine_saved(system: System) -> None:
    folder = write_unlock_frame(system.tmp / "log", jpeg(640, 360, color=(200, 10, 10)), {"faces": [FACE]})
    stamp = folder.name  # the engine names the folder by the local time of the unlock, to the second
    hook = system.client(signed_in=False)
    answer = hook.post("/hooks/engine", headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}, json={
        "event": "unlocked", "time": stamp, "person": "ada", "confidence": 0.93, "frames": 2})
    assert answer.json()["recorded"] is True
    client = system.client()
    event = wait_for(lambda: (client.get("/api/events").json()["events"] or [{}])[0].get("thumb") and
                      client.get("/api/events").json()["events"][0])
    assert (event["kind"], event["person"], event["confidence"]) == ("unlock", "ada", 0.93)
    assert abs(event["time"] - datetime.fromisoformat(stamp).timestamp()) < 1
    thumb = client.get(event["thumb"])
    frame = client.get(event["frame"])
    width, height = _image_size(thumb.content)
    assert max(width, height) <= 240 and width < 200  # a crop around the face, not the whole frame
    assert _image_size(frame.content) == (640, 360)
    pixel = Image.open(io.BytesIO(frame.content)).getpixel((5, 5))
    assert pixel[0] > 150 and pixel[1] < 60  # the engine's (red) frame, not the camera's snapshot
    people = client.get("/api/people").json()  # unlock counts appear on the People page
    assert people == {"people": []}  # (nobody enrolled in the fake)


def test_strangers_and_sightings_are_told_apart_and_merged(system: System) -> None:
    hook = system.client(signed_in=False)
    hook.headers["Authorization"] = f"Bearer {WEBHOOK_TOKEN}"
    url = "/hooks/engine"
    now = time.time()
    for offset in (0, 1, 2):
        hook.post(url, json={"event": "refused-unknown", "time": now + offset, "faces": 1,
                             "best_label": "ada", "best_confidence": 0.2})
    hook.post(url, json={"event": "refused-unknown", "time": now + 3, "faces": 1,
                         "best_label": "ada", "best_confidence": 0.66})
    hook.post(url, json={"event": "recognised", "time": now + 3, "person": "ada", "confidence": 0.95})
    client = system.client()
    events = client.get("/api/events").json()["events"]
    rows = [(e["kind"], e["person"], e["count"]) for e in events]
    assert rows == [("sighting", "ada", 1), ("stranger", None, 3)]
    assert events[1]["details"]["best_label"] == "ada"
    assert [e["kind"] for e in client.get("/api/events?kind=stranger").json()["events"]] == ["stranger"]
    assert [e["kind"] for e in client.get("/api/events?person=ada").json()["events"]] == ["sighting"]
    assert client.get("/api/events?kind=bogus").status_code == 400
    assert client.get("/api/events").json()["people"] == ["ada"]
    # the camera's frame of the moment is attached to new rows
    wait_for(lambda: all(e["thumb"] for e in client.get("/api/events").json()["events"]))


def test_calibration_and_the_threshold_setting(system: System) -> None:
    changes = []
    system.dashboard.settings.subscribe(lambda old, new: changes.append((old.threshold, new.threshold)))
    client = system.client()
    answer = client.get("/api/calibration").json()
    assert answer["threshold"] == 0.8
    assert answer["estimate"]["method"] == "leave-one-out" and answer["estimate"]["far"] == 0.0
    preview = client.get("/api/calibration?threshold=0.6").json()["estimate"]
    assert preview["method"] == "estimate" and 0 <= preview["far"] <= 1
    assert client.put("/api/settings", json={"threshold": 1.5}).status_code == 400
    assert client.put("/api/settings", json={"threshold": "high"}).status_code == 400
    saved = client.put("/api/settings", json={"threshold": 0.9})
    assert saved.status_code == 200 and saved.json()["settings"]["threshold"] == 0.9
    assert changes == [(0.8, 0.9)]
    assert client.get("/api/live/faces").json()["threshold"] == 0.9
    assert json.loads((system.tmp / "web" / "settings.json").read_text())["threshold"] == 0.9


def test_system_status_lists_the_parts(system: System) -> None:
    answer = system.client().get("/api/system").json()
    assert answer["children"][0]["name"] == "camera"
    assert answer["settings"] == {"threshold": 0.8}


def test_liveness_at_the_door_counts_the_timelines_unlocks_and_refusals(system: System) -> None:
    hook = system.client(signed_in=False)
    hook.headers["Authorization"] = f"Bearer {WEBHOOK_TOKEN}"
    now = time.time()

    def spoof(when: float, person: str, reason: str, *cues: str) -> dict:
        return {"event": "refused-spoof", "time": now - when, "person": person, "confidence": 0.9,
                "reason": reason, "liveness": "attack" if reason == "attack" else "undecided",
                "decided_by": list(cues), "cues": []}

    events = [  # as the engine posts them
        {"event": "unlocked", "time": now - 300, "person": "ada", "confidence": 0.93, "liveness": "live",
         "decided_by": ["depth106"], "liveness_wait": 0.5},
        {"event": "unlocked", "time": now - 240, "person": "ada", "confidence": 0.91, "liveness": "live",
         "decided_by": ["depth106"], "liveness_wait": 0.0},
        {"event": "unlocked", "time": now - 200, "person": "bob", "confidence": 0.9, "liveness": "live",
         "decided_by": ["depth106", "blink"], "liveness_wait": 1.25},
        {"event": "unlocked", "time": now - 190, "person": "bob", "liveness": "live", "liveness_wait": "NaN"},
        {"event": "unlocked", "time": now - 180, "person": "bob", "liveness": "live", "liveness_wait": True},
        {"event": "unlocked", "time": now - 170, "person": "bob", "liveness": "live", "liveness_wait": 1e9},
        {"event": "unlocked", "time": now - 150, "person": "bob", "confidence": 0.9, "liveness": "off"},
        {"event": "unlocked", "time": now - 120, "person": "bob", "confidence": 0.9},  # an older engine
        # a timeout, then two attacks seconds later: three rows, none hides the others
        spoof(100, "bob", "timeout", "depth"), spoof(97, "bob", "attack", "frame"),
        spoof(95, "bob", "attack", "frame"), spoof(93, "bob", "attack", "frame", "motion"),
        spoof(60, "ada", "timeout"), spoof(10, "cy", "undecided"), spoof(5, "cy", "something new"),
        *(spoof(50 - i, f"p{i:02d}", "undecided") for i in range(10)),
        {"event": "unlocked", "time": now - 40 * 86400, "person": "ada", "liveness": "live",
         "liveness_wait": 9.0},  # outside the 30 days asked for
    ]
    for event in events:
        assert hook.post("/hooks/engine", json=event).json()["recorded"] is True
    assert hook.get("/api/calibration/liveness").status_code == 401
    door = system.client().get("/api/calibration/liveness?days=30").json()
    assert door["unlocks"] == {"live": 6, "off": 1, "unknown": 1} and door["complete"] is True
    # the waits that are numbers of seconds (not NaN, true, or 30 years); p90 within the values seen
    assert door["wait"] == {"count": 3, "median": 0.5, "p90": 1.1}
    assert door["refused"] == {"attack": 3, "timeout": 2, "undecided": 11, "other": 1}
    assert door["cues"] == {"frame": 3, "motion": 1}  # the timeout's "depth" is no attack's cue
    assert door["people"][:3] == [{"person": "bob", "refused": 4, "live": 4},
                                  {"person": "cy", "refused": 2, "live": 0},
                                  {"person": "ada", "refused": 1, "live": 2}]
    assert len(door["people"]) == 10  # the most refused, not all 13
    assert abs(door["oldest"] - (now - 300)) < 1
    assert system.client().get("/api/calibration/liveness?days=0").status_code in (400, 422)


def test_a_wait_that_is_not_a_number_of_seconds_is_not_counted() -> None:
    from smartlock.web.door_liveness import summary
    from smartlock.web.events import Event

    def unlock(wait: object) -> Event:
        return Event(1, 0.0, 0.0, "unlock", "ada", 0.9, 1, False, {"liveness": "live", "liveness_wait": wait})

    assert summary([unlock(v) for v in (float("nan"), float("inf"), -1.0, None, "1", 2.0)])["wait"] == {
        "count": 1, "median": 2.0, "p90": None}
