"""Accounts, roles, sessions kept on disk and the audit of user actions: the stores alone, then over HTTP
against a real dashboard (uvicorn on 127.0.0.1, fake recognition and door)."""

from __future__ import annotations

import hashlib
import json
import logging
import stat
from pathlib import Path

import httpx
import pytest

from smartlock.errors import ConfigError
from smartlock.web.accounts import AccountConflict, AccountStore, UnknownAccount, hash_password, username
from smartlock.web.audit import AuditLog, record_action
from smartlock.web.auth import SessionStore
from smartlock.web.routes.guards import COOKIE, CSRF_HEADER
from tests.support import ManualClock
from tests.web.conftest import PASSWORD, USERNAME, System
from tests.web.fakes import jpeg

VIEWER, VIEWER_PASSWORD = "reception", "front desk password"


# -- accounts ------------------------------------------------------------------------------------------------


def test_user_names_are_checked_and_case_folded() -> None:
    assert username("Reception.Desk_2-b") == "reception.desk_2-b"
    assert username("  ada  ") == "ada"
    kelvin = "\u212a"  # folds to "k" in Unicode, yet is no ASCII letter
    for bad in ("", " ", "a" * 33, "ada lovelace", "ada/x", "ädä", "\ud800", None, 7, kelvin):
        with pytest.raises(ConfigError, match="1 to 32"):
            username(bad)


def test_accounts_live_in_a_private_file_with_hashes_only(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "web" / "password.json")
    assert not store.is_set() and store.accounts() == []
    first = store.create_first("Boss", "the boss password")
    assert (first.name, first.role) == ("boss", "admin")
    with pytest.raises(AccountConflict):
        store.create_first("other", "another password")  # only the very first account
    store.add("Reception", VIEWER_PASSWORD, "viewer")
    assert [(a.name, a.role) for a in store.accounts()] == [("boss", "admin"), ("reception", "viewer")]
    assert store.authenticate("RECEPTION", VIEWER_PASSWORD).name == "reception"
    assert store.authenticate("reception", "the boss password") is None
    assert store.authenticate("nobody", VIEWER_PASSWORD) is None
    assert store.authenticate("bad name!", VIEWER_PASSWORD) is None
    assert store.authenticate("reception", None) is None
    text = store.path.read_text()
    assert VIEWER_PASSWORD not in text and "boss password" not in text
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["password.json"]  # no temp file left


def test_adding_refuses_bad_input_and_taken_names(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "password.json")
    store.create_first("admin", PASSWORD)
    with pytest.raises(AccountConflict, match="already"):
        store.add("ADMIN", "some password", "viewer")
    with pytest.raises(ConfigError, match="at least 8"):
        store.add("x", "short", "viewer")
    with pytest.raises(ConfigError, match="role"):
        store.add("x", "long enough", "owner")
    with pytest.raises(ConfigError, match="password"):
        store.add("x", None, "viewer")
    assert [a.name for a in store.accounts()] == ["admin"]


def test_the_last_admin_can_be_neither_removed_nor_demoted(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "password.json")
    store.create_first("admin", PASSWORD)
    store.add("reception", VIEWER_PASSWORD, "viewer")
    with pytest.raises(AccountConflict, match="last admin"):
        store.remove("admin")
    with pytest.raises(AccountConflict, match="last admin"):
        store.set_role("admin", "viewer")
    store.set_role("reception", "admin")
    store.set_role("admin", "viewer")  # another admin exists now
    with pytest.raises(AccountConflict, match="last admin"):
        store.remove("reception")
    store.remove("admin")
    assert [(a.name, a.role) for a in store.accounts()] == [("reception", "admin")]
    with pytest.raises(UnknownAccount):
        store.remove("admin")
    with pytest.raises(UnknownAccount):
        store.set_password("admin", "a new password")


def test_the_epoch_changes_with_the_password_and_the_role(tmp_path: Path) -> None:
    store = AccountStore(tmp_path / "password.json")
    store.create_first("admin", PASSWORD)
    store.add("reception", VIEWER_PASSWORD, "viewer")
    epoch = store.get("reception").epoch
    assert store.set_role("reception", "viewer").epoch == epoch  # no change, no new epoch
    promoted = store.set_role("reception", "admin")
    assert promoted.epoch != epoch
    changed = store.set_password("reception", "another password")
    assert changed.epoch not in (epoch, promoted.epoch)
    assert store.authenticate("reception", "another password")
    assert not store.verify(VIEWER_PASSWORD, "reception")


def test_a_single_password_install_becomes_an_admin_named_admin(tmp_path: Path) -> None:
    path = tmp_path / "password.json"
    path.write_text(json.dumps(hash_password("the old password")))  # the file before accounts existed
    path.chmod(0o600)
    store = AccountStore(path)
    (account,) = store.accounts()
    assert (account.name, account.role) == ("admin", "admin")
    assert store.authenticate("admin", "the old password") is not None
    assert store.authenticate("admin", "not the old one") is None
    data = json.loads(path.read_text())  # rewritten in the new shape, still private
    assert list(data["accounts"]) == ["admin"] and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert AccountStore(path).authenticate("admin", "the old password") is not None  # and read back


def test_setting_the_same_password_keeps_the_sessions(tmp_path: Path) -> None:
    """What `up --password-file` does at every start: the admin "admin" gets that password."""
    store = AccountStore(tmp_path / "password.json")
    store.set(PASSWORD)
    epoch = store.get("admin").epoch
    store.set(PASSWORD)
    assert store.get("admin").epoch == epoch  # unchanged: its sessions survive the restart
    store.set("a different one")
    assert store.get("admin").epoch != epoch and store.verify("a different one")


def test_a_corrupt_accounts_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "password.json"
    path.write_text('{"version": 2}')
    with pytest.raises(ConfigError, match="delete it"):
        AccountStore(path).is_set()


# -- sessions on disk ----------------------------------------------------------------------------------------


def test_sessions_are_saved_as_hashes_and_read_back(tmp_path: Path) -> None:
    clock = ManualClock()
    path = tmp_path / "sessions.json"
    sessions = SessionStore(path, idle_timeout=100, max_age=250, clock=clock)
    token = sessions.create("ada", "epoch-1")
    other = sessions.create("bob", "epoch-2")
    text = path.read_text()
    assert token not in text and other not in text
    assert hashlib.sha256(token.encode()).hexdigest() in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = SessionStore(path, idle_timeout=100, max_age=250, clock=clock)  # a restart
    assert again.session(token) == ("ada", "epoch-1")
    assert again.session(hashlib.sha256(token.encode()).hexdigest()) is None  # the file's key is no cookie
    assert again.revoke_user("bob") == 1
    assert SessionStore(path, clock=clock).session(other) is None
    clock.advance(251)
    assert SessionStore(path, idle_timeout=100, max_age=250, clock=clock).session(token) is None


def test_activity_is_saved_often_enough_for_the_idle_timeout(tmp_path: Path) -> None:
    clock = ManualClock()
    path = tmp_path / "sessions.json"
    sessions = SessionStore(path, idle_timeout=100, clock=clock, save_every=30)
    token = sessions.create("ada", "e")
    for _ in range(5):
        clock.advance(60)
        assert sessions.check(token)
    # restarted 60 s after the last request: the saved activity is at most save_every old
    assert SessionStore(path, idle_timeout=100, clock=clock).check(token)


@pytest.mark.parametrize("content", ["{not json", '{"sessions": 3}', "[]", '{"sessions": {"x": [1]}}'])
def test_a_corrupt_sessions_file_means_signing_in_again(tmp_path: Path, content: str, caplog) -> None:
    path = tmp_path / "sessions.json"
    path.write_text(content)
    with caplog.at_level(logging.WARNING):
        sessions = SessionStore(path)
    assert len(sessions) == 0
    assert any("sessions file" in r.getMessage() for r in caplog.records)
    token = sessions.create("ada", "e")  # and it works on
    assert SessionStore(path).check(token)


def test_sessions_that_cannot_be_saved_live_on_in_memory(tmp_path: Path, caplog) -> None:
    path = tmp_path / "not a folder"
    path.write_text("")
    with caplog.at_level(logging.WARNING):
        sessions = SessionStore(path / "sessions.json")
        tokens = [sessions.create("ada", "e") for _ in range(3)]
    assert all(sessions.check(t) for t in tokens)
    assert sum("cannot save" in r.getMessage() for r in caplog.records) == 1  # once, not per write


def test_sessions_are_bounded() -> None:
    clock = ManualClock()
    sessions = SessionStore(max_sessions=3, clock=clock)
    tokens = []
    for _ in range(5):
        tokens.append(sessions.create("ada", "e"))
        clock.advance(1)
    assert len(sessions) == 3 and not sessions.check(tokens[0]) and sessions.check(tokens[-1])


# -- the audit -----------------------------------------------------------------------------------------------


def test_the_audit_lists_newest_first_within_a_period(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path)
    for i in range(5):
        audit.record("ada", "enroll", {"person": f"p{i}"}, when=1000.0 + i)
    actions = audit.list()
    assert [a["details"]["person"] for a in actions] == ["p4", "p3", "p2", "p1", "p0"]
    assert set(actions[0]) == {"id", "time", "user", "action", "details"}
    assert [a["time"] for a in audit.list(since=1001, until=1003)] == [1003.0, 1002.0, 1001.0]
    assert len(audit.list(limit=2)) == 2
    assert stat.S_IMODE(audit.path.stat().st_mode) == 0o600
    audit.close()


def test_the_audit_is_bounded_and_noise_cannot_push_changes_out(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path, max_actions=5, max_noise=3)
    for i in range(8):
        audit.record("ada", "enroll", {"n": i})
    for i in range(50):
        audit.record(None, "sign-in-failed", {"n": i})
    actions = audit.list(limit=1000)
    assert [a["details"]["n"] for a in actions if a["action"] == "enroll"] == [7, 6, 5, 4, 3]
    assert [a["details"]["n"] for a in actions if a["action"] == "sign-in-failed"] == [49, 48, 47]
    audit.close()


def test_record_action_never_raises(tmp_path: Path, system: System, caplog) -> None:
    system.dashboard.audit.close()  # any write now fails
    with caplog.at_level(logging.ERROR):
        record_action(system.dashboard, "ada", "lock", {})
    assert any("cannot record" in r.getMessage() for r in caplog.records)


# -- over HTTP -----------------------------------------------------------------------------------------------


def sign_in(system: System, user: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=system.url, headers={CSRF_HEADER: "1"}, timeout=10)
    answer = client.post("/api/auth/login", json={"username": user, "password": password})
    assert answer.status_code == 200, answer.text
    return client


def add_viewer(admin: httpx.Client) -> None:
    body = {"username": VIEWER, "password": VIEWER_PASSWORD, "role": "viewer"}
    answer = admin.post("/api/accounts", json=body)
    assert answer.status_code == 201, answer.text


def test_admins_manage_accounts_and_everything_is_audited(system: System) -> None:
    admin = system.client()
    assert admin.get("/api/me").json() == {"user": USERNAME, "role": "admin"}
    add_viewer(admin)
    listed = admin.get("/api/accounts").json()["accounts"]
    assert [(a["user"], a["role"]) for a in listed] == [("admin", "admin"), (VIEWER, "viewer")]
    viewer = sign_in(system, "Reception", VIEWER_PASSWORD)  # user names are case-folded
    assert viewer.get("/api/me").json() == {"user": VIEWER, "role": "viewer"}
    assert viewer.get("/api/auth/state").json()["role"] == "viewer"

    # promoting keeps nothing stale: the old session ends, a new sign-in is an admin
    assert admin.put(f"/api/accounts/{VIEWER}/role", json={"role": "admin"}).status_code == 200
    assert viewer.get("/api/me").status_code == 401
    viewer = sign_in(system, VIEWER, VIEWER_PASSWORD)
    assert viewer.get("/api/accounts").status_code == 200
    assert admin.put(f"/api/accounts/{VIEWER}/role", json={"role": "viewer"}).status_code == 200
    assert viewer.get("/api/me").status_code == 401  # demoted: signed out

    viewer = sign_in(system, VIEWER, VIEWER_PASSWORD)
    reset = admin.put(f"/api/accounts/{VIEWER}/password", json={"password": "a reset password"})
    assert reset.status_code == 200
    assert viewer.get("/api/me").status_code == 401  # a reset ends their sessions
    viewer = sign_in(system, VIEWER, "a reset password")
    assert admin.delete(f"/api/accounts/{VIEWER}").status_code == 200
    assert viewer.get("/api/me").status_code == 401  # removed: signed out at once
    gone = httpx.post(f"{system.url}/api/auth/login", headers={CSRF_HEADER: "1"},
                      json={"username": VIEWER, "password": "a reset password"})
    assert gone.status_code == 401

    actions = [(a["user"], a["action"], a["details"].get("account")) for a in
               admin.get("/api/audit").json()["actions"]]
    assert actions[:4] == [(None, "sign-in-failed", None), ("admin", "account-remove", VIEWER),
                           (VIEWER, "sign-in", None), ("admin", "account-password-reset", VIEWER)]
    assert ("admin", "account-add", VIEWER) in actions
    assert ("admin", "account-role", VIEWER) in actions
    text = admin.get("/api/audit").text
    assert VIEWER_PASSWORD not in text and "a reset password" not in text


def test_account_changes_refuse_bad_input(system: System) -> None:
    admin = system.client()
    add_viewer(admin)
    cases = [
        (admin.post, "/api/accounts", {"username": "bad name", "password": "long enough", "role": "viewer"},
         400, "1 to 32"),
        (admin.post, "/api/accounts", {"username": VIEWER, "password": "long enough", "role": "viewer"},
         409, "already"),
        (admin.post, "/api/accounts", {"username": "x", "password": "short", "role": "viewer"},
         400, "at least 8"),
        (admin.post, "/api/accounts", {"username": "x", "password": "long enough", "role": "god"},
         400, "role"),
        (admin.put, "/api/accounts/nobody/role", {"role": "admin"}, 404, "no account"),
        (admin.put, f"/api/accounts/{VIEWER}/role", {"role": 3}, 400, "role"),
        (admin.put, f"/api/accounts/{VIEWER}/password", {"password": "short"}, 400, "at least 8"),
        (admin.put, "/api/accounts/admin/role", {"role": "viewer"}, 409, "last admin"),
    ]
    for call, path, body, status, message in cases:
        answer = call(path, json=body)
        assert answer.status_code == status and message in answer.json()["message"], (path, answer.text)
    answer = admin.delete("/api/accounts/admin")
    assert answer.status_code == 409 and "last admin" in answer.json()["message"]
    assert admin.delete("/api/accounts/bad%20name").status_code == 400
    assert admin.get("/api/audit?since=-1").status_code == 422
    assert admin.get("/api/audit?limit=100000").status_code == 422
    listed = admin.get("/api/accounts").json()["accounts"]
    assert [(a["user"], a["role"]) for a in listed] == [("admin", "admin"), (VIEWER, "viewer")]
    assert system.dashboard.accounts.verify(VIEWER_PASSWORD, VIEWER)


def test_sign_in_needs_the_user_name(system: System) -> None:
    client = system.client(signed_in=False)
    page = client.get("/login").text
    assert 'id="username"' in page and 'id="password"' in page
    missing = client.post("/api/auth/login", json={"password": PASSWORD})
    assert missing.status_code == 400 and "user name" in missing.json()["message"]
    wrong_user = client.post("/api/auth/login", json={"username": "nobody", "password": PASSWORD})
    assert wrong_user.status_code == 401 and "set-cookie" not in wrong_user.headers
    assert len(system.dashboard.sessions) == 0
    failed = system.dashboard.audit.list()
    assert [a["action"] for a in failed] == ["sign-in-failed", "sign-in-failed"]
    assert failed[0]["user"] is None and PASSWORD not in json.dumps(failed)  # not an account: not kept


def test_a_password_typed_into_the_name_box_is_not_kept(system: System, caplog) -> None:
    """A failed sign-in names the user in the audit (which viewers read) only when the account exists."""
    client = system.client(signed_in=False)
    typed = "Tr0ub4dor.and-3"  # a valid-looking user name that is really someone's password
    assert client.post("/api/auth/login", json={"username": typed, "password": "x" * 10}).status_code == 401
    known = client.post("/api/auth/login", json={"username": "admin", "password": "not the password"})
    assert known.status_code == 401
    actions = system.dashboard.audit.list()
    assert [a["user"] for a in actions if a["action"] == "sign-in-failed"] == ["admin", None]
    assert typed.lower() not in json.dumps(actions) and typed.lower() not in caplog.text.lower()


def test_users_change_their_own_password(system: System) -> None:
    admin = system.client()
    add_viewer(admin)
    mine, elsewhere = sign_in(system, VIEWER, VIEWER_PASSWORD), sign_in(system, VIEWER, VIEWER_PASSWORD)
    wrong = mine.post("/api/auth/password", json={"current": "not it at all", "new": "my own new password"})
    assert wrong.status_code == 403
    changed = mine.post("/api/auth/password", json={"current": VIEWER_PASSWORD, "new": "my own new password"})
    assert changed.status_code == 200
    assert mine.get("/api/me").json()["user"] == VIEWER  # this browser stays signed in
    assert elsewhere.get("/api/me").status_code == 401  # the others are signed out
    assert admin.get("/api/me").status_code == 200  # other users are not touched
    assert system.dashboard.accounts.verify("my own new password", VIEWER)
    assert not system.dashboard.accounts.verify(VIEWER_PASSWORD, VIEWER)


def test_viewers_read_everything_but_the_account_list(system: System) -> None:
    admin = system.client()
    add_viewer(admin)
    photo = ("photos", ("a.jpg", jpeg(), "image/jpeg"))
    assert admin.post("/api/people/enroll", data={"name": "Ada"}, files=[photo]).status_code == 200
    viewer = sign_in(system, VIEWER, VIEWER_PASSWORD)
    for path in ("/api/people", "/api/events", "/api/door/status", "/api/door/events", "/api/calibration",
                 "/api/system", "/api/audit", "/api/captures", "/api/live/faces"):
        assert viewer.get(path).status_code == 200, path
    for page in ("/live", "/events", "/people", "/calibration", "/accounts"):
        assert viewer.get(page).status_code == 200, page
    assert viewer.get("/api/accounts").status_code == 403
    enroll = viewer.get("/api/audit").json()["actions"]
    assert any(a["action"] == "enroll" and a["user"] == "admin" and a["details"]["person"] == "Ada"
               for a in enroll)


def test_the_accounts_page_needs_a_session(system: System) -> None:
    client = system.client(signed_in=False)
    assert client.get("/accounts").headers["location"] == "/login?next=/accounts"
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/audit").status_code == 401
    assert system.client().get("/accounts").status_code == 200


def test_a_signed_out_cookie_stays_refused(system: System) -> None:
    client = system.client()
    cookie = client.cookies[COOKIE]
    assert client.post("/api/auth/logout").status_code == 200
    replay = httpx.Client(base_url=system.url, cookies={COOKIE: cookie})
    assert replay.get("/api/me").status_code == 401
    assert [a["action"] for a in system.dashboard.audit.list()][:2] == ["sign-out", "sign-in"]


# -- in Chromium ---------------------------------------------------------------------------------------------


def test_accounts_and_a_viewers_pages_in_the_browser(system: System) -> None:
    """An admin adds a viewer on the Accounts page; the viewer's pages show no button they may not use."""
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("needs Debian's chromium (/usr/bin/chromium): scripts/test installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (test extra)")
    from tests.web.test_browser import CHROMIUM_ARGS, shot

    system.client().post("/api/people/enroll", data={"name": "Ada"},
                         files=[("photos", ("a.jpg", jpeg(), "image/jpeg"))])
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{system.url}/login?next=/accounts")
            page.fill("#username", USERNAME)
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{system.url}/accounts")
            page.wait_for_selector("#accounts tr[data-user=admin]")
            assert page.locator(".nav a:has-text('Accounts')").count() == 1
            page.fill("#new-user", "Reception")
            page.fill("#new-password", VIEWER_PASSWORD)
            page.click("#add button[type=submit]")
            page.wait_for_selector(f"#accounts tr[data-user={VIEWER}]")
            # the last admin's role and removal are disabled on the page (and refused by the server)
            assert page.locator("tr[data-user=admin] button.danger").is_disabled()
            shot(page, "accounts-admin")
            page.close()

            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{system.url}/login?next=/people")
            page.fill("#username", VIEWER)
            page.fill("#password", VIEWER_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{system.url}/people")
            page.wait_for_selector(".person[data-name=Ada]")
            page.wait_for_selector("html.role-viewer")
            assert page.locator(".nav a:has-text('My account')").count() == 1
            assert page.locator(".nav a:has-text('Accounts')").count() == 0
            assert not page.locator("#name").is_visible() and not page.locator("#upload").is_visible()
            assert not page.locator(".person button.danger").is_visible()
            shot(page, "accounts-viewer-people")
            page.goto(f"{system.url}/live")
            page.wait_for_selector("html.role-viewer")
            assert not page.locator("#lock-now").is_visible() and not page.locator("#capture").is_visible()
            page.goto(f"{system.url}/accounts")
            page.wait_for_selector("#me:has-text('reception (viewer)')")
            assert not page.locator("#accounts-card").is_visible()
            page.fill("#current", VIEWER_PASSWORD)
            page.fill("#new", "my own new password")
            page.fill("#repeat", "my own new password")
            page.click("#own button[type=submit]")
            page.wait_for_selector(".toast:has-text('password changed')")
            shot(page, "accounts-viewer-own-password")
            assert system.dashboard.accounts.verify("my own new password", VIEWER)
            page.close()
        finally:
            browser.close()
    assert system.door.locks == 0 and list(system.recognition.people_images) == ["Ada"]
