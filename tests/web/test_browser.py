"""The dashboard in headless Chromium (Debian's package, driven by Playwright).

The main test runs a real `smartlock up` (every part a real process, the relay on gpiozero's mock pins)
fed by a video of a person's photo: sign in, see the live image move, enroll the person by uploading three
photos, see the unlock in the timeline and the door unlocked, remove the person and see no further unlock.
Screenshots of every page go to artifacts/screenshots/.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from smartlock.config import project_root
from tests.support import LOOPBACK, free_port, stop_process, wait_for, wait_until_up
from tests.web.media import person_video

pytestmark = [pytest.mark.timeout(420), pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SCREENSHOTS = project_root() / "artifacts" / "screenshots"
PASSWORD = "front door 2024!"
USERNAME = "admin"  # --password-file sets the password of the admin account "admin"
# Checked on ../shared/faces: photos 1-3 each show one face, and photo 4 on the video's canvas is
# recognised as them (and found by the engine's Haar pre-filter). OTHER is enrolled too, for calibration.
PERSON, OTHER = "Ahmed_Chalabi", "Ai_Sugiyama"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium (/usr/bin/chromium): scripts/test installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (test extra)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# -- first-run setup, against the dashboard alone (fake collaborators) -----------------------------------


def test_first_run_setup_link_in_the_browser(browser, system) -> None:
    system.dashboard.passwords.path.unlink()
    token = system.dashboard.setup.issue()
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        page.goto(f"{system.url}/live")
        assert page.url.endswith("/login?next=/live")
        assert "No password has been chosen yet" in page.inner_text("body")
        page.goto(f"{system.url}/setup?token={token}")
        assert "token" not in page.url  # the one-time token leaves the address bar at once
        page.fill("#password", "my new password")
        page.fill("#repeat", "my new password!")
        page.click("button[type=submit]")
        page.wait_for_selector("#error:has-text('differ')")
        shot(page, "00-setup")
        page.fill("#repeat", "my new password")
        page.click("button[type=submit]")
        page.wait_for_url(f"{system.url}/live")
        page.wait_for_selector(".topbar .part:has-text('camera')")
        assert system.dashboard.passwords.verify("my new password")
    finally:
        page.close()


# -- the whole system ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def up(tmp_path_factory, faces_dir: Path) -> Iterator[dict]:
    work = tmp_path_factory.mktemp("up")
    video = person_video(faces_dir / "people" / PERSON / f"{PERSON}_0004.jpg", work / "person.mp4")
    password_file = work / "password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    port = free_port()
    data_dir = work / "data"
    log_path = work / "up.log"
    # --liveness off: the video shows a photo, which liveness rightly refuses (its own tests cover that)
    args = ["up", "--camera", str(video), "--data-dir", str(data_dir), "--port", str(port),
            "--password-file", str(password_file), "--lock-delay", "5", "--liveness", "off"]
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "smartlock", *args], stdout=log,
                                   stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://{LOOPBACK}:{port}"
    info = {"url": base, "process": process, "data_dir": data_dir, "log": log_path, "video": video}
    try:
        wait_until_up(f"{base}/api/auth/state", timeout=60, process=process)
        info["dashboard_after"] = time.monotonic() - started
        yield info
    except BaseException:
        print(log_path.read_text()[-5000:])
        raise
    finally:
        stop_process(process, timeout=30)
        info["log_text"] = log_path.read_text()


def _all_parts_running(base: str) -> list[dict]:
    client = httpx.Client(base_url=base, headers={"X-Smartlock-Request": "1"}, timeout=10)
    assert client.post("/api/auth/login", json={"username": USERNAME, "password": PASSWORD}
                       ).status_code == 200

    def running() -> list[dict] | None:
        children = client.get("/api/system").json()["children"]
        return children if all(child["state"] == "running" for child in children) else None

    return wait_for(running, timeout=120, interval=0.5, what="every part running")


def _unlocks(page) -> list[dict]:
    return page.evaluate(
        "async (person) => (await (await fetch(`/api/events?kind=unlock&person=${person}`)).json()).events",
        PERSON,
    )


def _refusals(page) -> int:
    """How many refused-unknown events of the engine the timeline has counted (stranger and sighting rows
    merge repeats, so their counts are summed): each is an analysed frame that opened nothing."""
    return page.evaluate(
        """async () => {
            let total = 0;
            for (const kind of ["stranger", "sighting"]) {
                const answer = await (await fetch(`/api/events?kind=${kind}&limit=200`)).json();
                total += answer.events.reduce((sum, event) => sum + event.count, 0);
            }
            return total;
        }"""
    )


@pytest.mark.faces
def test_enroll_unlock_remove_in_the_browser(browser, up, faces_dir: Path) -> None:
    from playwright.sync_api import expect

    base = up["url"]
    children = _all_parts_running(base)
    assert [c["name"] for c in children] == ["door", "vision"]  # camera, recognition, engine: one process
    page = browser.new_page(viewport={"width": 1360, "height": 860})
    page.on("dialog", lambda dialog: dialog.accept())  # the "remove?" confirmations
    try:
        # sign in
        page.goto(f"{base}/live")
        assert page.url.endswith("/login?next=/live")
        shot(page, "01-sign-in")
        page.fill("#username", USERNAME)
        page.fill("#password", "not the password")
        page.click("button[type=submit]")
        page.wait_for_selector("#error:has-text('wrong password')")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/live")

        # the live image updates (the video's frame counter and drift change every frame)
        stream = page.locator("#stream")
        expect(page.locator("#stream-notice")).to_be_hidden(timeout=30_000)
        # polled from Python: the page's CSP forbids the eval wait_for_function polls with
        wait_for(lambda: page.evaluate("document.querySelector('#stream').naturalWidth") > 0, timeout=30,
                 interval=0.2, what="the live image to load")
        first = stream.screenshot()
        wait_for(lambda: stream.screenshot() != first, timeout=30, interval=0.2,
                 what="the live image to change")
        page.wait_for_selector("#faces li:has-text('unknown')", timeout=30_000)  # nobody enrolled yet
        page.wait_for_timeout(700)  # let the overlay draw its box
        shot(page, "02-live-nobody-enrolled")
        assert page.inner_text("#door-state") == "Locked"

        # enroll the person in the video by uploading three of their photos
        page.click("nav >> text=People")
        page.wait_for_url(f"{base}/people")
        page.fill("#name", PERSON)
        photos = [str(faces_dir / "people" / PERSON / f"{PERSON}_000{i}.jpg") for i in (1, 2, 3)]
        page.set_input_files("#photos", photos)
        enrolled_at = time.time()
        page.click("#upload")
        page.wait_for_selector("#outcomes li", timeout=60_000)
        outcomes = page.locator("#outcomes li").all_inner_texts()
        assert len(outcomes) == 3 and all(text.startswith("✓ enrolled") for text in outcomes), outcomes
        page.wait_for_selector(f".person[data-name='{PERSON}'] .photo img", timeout=10_000)

        # within seconds: an unlock naming them in the timeline, and the door unlocked
        page.click("nav >> text=Events")
        page.wait_for_selector(f".timeline li[data-kind=unlock][data-person='{PERSON}']", timeout=30_000)
        seen_after = time.time() - enrolled_at
        row = page.locator(f".timeline li[data-kind=unlock][data-person='{PERSON}']").first
        assert PERSON in row.inner_text() and "Unlocked" in row.inner_text()
        page.wait_for_selector(".timeline li[data-kind=unlock] img.thumb", timeout=10_000)
        shot(page, "03-events-unlocked")
        page.click("nav >> text=Live")
        page.wait_for_selector("#door-state:has-text('Unlocked')", timeout=30_000)
        assert "locks again in" in page.inner_text("#door-detail")
        page.wait_for_selector(f"#faces li:has-text('{PERSON}')", timeout=10_000)
        page.wait_for_timeout(700)
        shot(page, "04-live-unlocked")
        print(f"unlock in the timeline {seen_after:.1f} s after clicking enroll")

        # a second person (not in the video), so that the calibration has impostor scores to show
        page.click("nav >> text=People")
        page.fill("#name", OTHER)
        page.set_input_files("#photos", [str(faces_dir / "people" / OTHER / f"{OTHER}_000{i}.jpg")
                                         for i in (1, 2, 3)])
        page.click("#upload")
        page.wait_for_selector(f".person[data-name='{OTHER}']", timeout=60_000)
        shot(page, "05-people")
        page.click(".tabs button[data-tab=captures]")  # frames taken from the live view, to pick from
        page.click("#take")
        page.wait_for_selector("#captures .pick.selected img", timeout=15_000)
        shot(page, "05b-people-from-live-view")
        page.click(".tabs button[data-tab=collected]")
        page.wait_for_selector("#collected p, #collected .pick", timeout=15_000)
        page.click("nav >> text=Calibration")
        expect(page.locator("#people")).to_have_text("2", timeout=30_000)
        # liveness at this door, from the timeline: the engine's unlock said liveness was off (this `up`)
        expect(page.locator("#door-liveness")).to_contain_text("face unlocks with liveness off: ")
        assert page.inner_text("#door-liveness").startswith("Face unlocks judged live: 0;")
        page.wait_for_timeout(500)
        shot(page, "06-calibration")

        # remove them: no further unlock
        page.click("nav >> text=People")
        page.click(f".person[data-name='{PERSON}'] button.danger")
        page.wait_for_selector(f".person[data-name='{PERSON}']", state="detached", timeout=30_000)
        # A recognition already in flight may still carry the old gallery: once the engine has refused
        # frames of them, it uses the new one. Then, while it refuses eight more (one event a second at
        # most, after any block time), no unlock may come.
        at_removal = _refusals(page)
        settled = wait_for(lambda: (n := _refusals(page)) >= at_removal + 2 and n, timeout=60, interval=0.3,
                           what="the engine refusing the removed person")
        before = len(_unlocks(page))
        wait_for(lambda: _refusals(page) >= settled + 8, timeout=90, interval=0.3,
                 what="eight more refused frames")
        assert len(_unlocks(page)) == before
        page.click("nav >> text=Live")
        page.wait_for_selector("#door-state:has-text('Locked')", timeout=10_000)
        page.wait_for_selector("#faces li:has-text('unknown')", timeout=10_000)
        page.wait_for_timeout(700)
        shot(page, "07-live-after-removal")
        page.click("nav >> text=Events")
        page.wait_for_selector(".timeline li")
        shot(page, "08-events-after-removal")
        page.locator(".tabs button[data-tab=audit]").click()
        page.wait_for_selector("#audit tr")
        shot(page, "09-door-audit")
    finally:
        page.close()

    # Ctrl-C / SIGTERM stops everything cleanly and leaves the door locked
    process = up["process"]
    pids = [c["pid"] for c in children if c["pid"]]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with sqlite3.connect(up["data_dir"] / "door-events.db") as db:
        rows = db.execute("SELECT action, outcome FROM events ORDER BY id").fetchall()
    last_unlock = max(i for i, row in enumerate(rows) if row == ("unlock", "accepted"))
    assert ("lock", "accepted") in rows[last_unlock + 1:]
    print(f"dashboard answered {up['dashboard_after']:.1f} s after `smartlock up` started")


# -- the Settings page, against its own `up` (a folder of still frames, no faces needed) ------------------


def test_settings_page_applies_a_change_and_says_what_restarted(browser, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from tests.web.fakes import jpeg

    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(3):
        (frames / f"{index}.jpg").write_bytes(jpeg(640, 360, (70 + 40 * index, 110, 140)))
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    port, log_path = free_port(), tmp_path / "up.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "smartlock", "up", "--camera", str(frames), "--data-dir",
             str(tmp_path / "data"), "--port", str(port), "--password-file", str(password_file),
             "--no-collector"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base = f"http://{LOOPBACK}:{port}"
    context = None
    try:
        wait_until_up(f"{base}/api/auth/state", timeout=60, process=process)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        signed = context.request.post(f"{base}/api/auth/login", headers={"X-Smartlock-Request": "1"},
                                      data={"username": "admin", "password": PASSWORD})
        assert signed.ok, signed.text()

        def parts() -> dict[str, dict] | None:
            children = context.request.get(f"{base}/api/system").json()["children"]
            running = all(c["state"] == "running" for c in children)
            return {c["name"]: c for c in children} if running else None

        before = wait_for(parts, timeout=120, interval=0.5, what="every part running")
        page = context.new_page()
        page.goto(f"{base}/settings")
        lock_delay = page.locator("form[data-section=door] input[name=lock_delay]")
        expect(lock_delay).to_have_value("3")
        assert "a change restarts: door" in page.inner_text("form[data-section=door] .restarts")
        assert "--camera" in page.inner_text("#flags")  # given on the command line: it wins at start
        liveness = context.request.get(f"{base}/api/settings").json()["liveness"]  # the engine's flag
        assert page.locator("input[name=liveness]").is_disabled() == (not liveness)
        still_frame = page.locator("input[name=liveness_still_frame]")
        assert still_frame.is_checked() and still_frame.is_disabled() == (not liveness)  # on: the default
        shot(page, "10-settings")

        lock_delay.fill("0")  # refused next to the field, nothing restarted
        page.click("form[data-section=door] button[type=submit]")
        page.wait_for_selector(".field-error[data-for=lock_delay]:has-text('lock delay')")
        assert {n: c["pid"] for n, c in (parts() or {}).items()} == {n: c["pid"] for n, c in before.items()}
        shot(page, "11-settings-refused")

        lock_delay.fill("6")
        page.click("form[data-section=door] button[type=submit]")
        page.wait_for_selector("form[data-section=door] .result.ok:has-text('restarted: door')",
                               timeout=60_000)
        after = parts() or {}
        assert after["door"]["pid"] != before["door"]["pid"]
        assert after["vision"]["pid"] == before["vision"]["pid"]
        assert context.request.get(f"{base}/api/door/status").json()["lock_delay"] == 6
        assert page.locator(".field-error[data-for=lock_delay]").inner_text() == ""
        shot(page, "12-settings-saved")

        page.goto(f"{base}/calibration")  # one threshold: the Calibration page links to the Settings page
        page.click("a[href='/settings']")
        page.wait_for_url(f"{base}/settings")
        expect(page.locator("form[data-section=door] input[name=lock_delay]")).to_have_value("6")
    except BaseException:
        print(log_path.read_text()[-5000:])
        raise
    finally:
        if context is not None:
            context.close()
        stop_process(process, timeout=30)
