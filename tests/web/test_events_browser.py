"""The Events page in headless Chromium (Debian's package, driven by Playwright), against the dashboard with
fake collaborators: a visit row that expands, the frame viewer (boxes, names, confidences, liveness; Esc
and the Close button; keyboard only), the period chooser refusing a bad period, and a CSV download.
Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartlock.config import project_root
from tests.web.conftest import System
from tests.web.fakes import jpeg

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
SCREENSHOTS = project_root() / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium (/usr/bin/chromium): scripts/test installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (test extra)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def signed_in_page(browser, system: System):
    client = system.client()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.add_cookies([{"name": name, "value": value, "url": system.url}
                         for name, value in client.cookies.items()])
    return context, context.new_page()


def test_visits_the_frame_viewer_and_exports_in_the_browser(browser, system: System) -> None:
    events = system.dashboard.events
    start = time.time() - 600
    faces = {"width": 640, "height": 360, "faces": [
        {"label": "Al Gore", "confidence": 0.953, "box": {"left": 60, "top": 40, "right": 220, "bottom": 230},
         "liveness": {"live": True, "score": 0.97}},
        {"label": "unknown", "confidence": 0.21,
         "box": {"left": 400, "top": 60, "right": 520, "bottom": 200}},
    ]}
    for i in range(7):  # a looping visitor: 7 unlocks a minute apart
        event_id, _ = events.add("unlock", "Al Gore", 0.95, when=start + 60 * i)
        events.attach_images(event_id, jpeg(96, 72, color=(40, 90, 160)), jpeg(640, 360, color=(40, 90, 160)),
                             faces)
    events.add("stranger", None, 0.1, when=start + 500)
    context, page = signed_in_page(browser, system)
    try:
        page.goto(f"{system.url}/events")
        visit = page.wait_for_selector("li.visit")
        assert "×7" in visit.inner_text() and "7 unlocks" in visit.inner_text()
        assert page.locator("#events > li").count() == 2  # the stranger, then one row for the 7 unlocks
        page.click("li.visit button[aria-expanded=false]")
        page.wait_for_selector("li.visit ul.nested:not(.hidden)")
        assert page.locator("li.visit ul.nested > li").count() == 7
        shot(page, "events-visit-expanded")

        # keyboard only: focus the visit's thumbnail button and press Enter
        page.focus("li.visit > .thumb-button")
        page.keyboard.press("Enter")
        page.wait_for_selector("#viewer:not(.hidden)")
        # (selectors, not wait_for_function: the page's CSP forbids the eval it polls with)
        page.wait_for_selector("#viewer-marks text:nth-of-type(2)", state="attached")
        assert page.locator("#viewer-marks rect").count() == 2
        assert page.evaluate("document.activeElement.id") == "viewer-close"
        tags = page.eval_on_selector_all("#viewer-marks text", "nodes => nodes.map((n) => n.textContent)")
        assert tags[0].startswith("Al Gore 95.3%") and "live 97%" in tags[0]
        assert tags[1].startswith("unknown 21.0%") and "live" not in tags[1]
        assert page.get_attribute("#viewer-marks", "viewBox") == "0 0 640 360"
        shot(page, "events-frame-viewer")
        page.keyboard.press("Escape")
        page.wait_for_selector("#viewer", state="hidden")
        assert "thumb-button" in page.evaluate("document.activeElement.className")  # focus back
        page.keyboard.press("Enter")  # open again, close with the button
        page.wait_for_selector("#viewer:not(.hidden)")
        page.click("#viewer-close")
        page.wait_for_selector("#viewer", state="hidden")

        # a period that ends before it starts: the server's message next to the fields
        page.fill("#since", "2026-11-30")
        page.fill("#until", "2026-11-01")
        page.click("button[data-export='/api/events.csv']")
        page.wait_for_selector("#period-error:has-text('until must be later than since')")
        shot(page, "events-period-refused")

        page.fill("#since", "")
        page.fill("#until", "")
        with page.expect_download() as download_info:
            page.click("button[data-export='/api/events.csv']")
        download = download_info.value
        assert download.suggested_filename.startswith("smartlock-timeline-")
        rows = list(csv.reader(io.StringIO(Path(download.path()).read_text())))
        assert rows[0][:4] == ["id", "time", "last_time", "kind"]
        assert len(rows) == 9  # the header, then every unlock (one row each) and the stranger
        assert page.inner_text("#period-error") == ""

        page.click(".tabs button[data-tab=activity]")
        page.wait_for_selector("#activity-tab:not(.hidden)")
        page.wait_for_selector("#activity tr, #activity-missing:not(.hidden)", state="attached")
        shot(page, "events-activity")
    finally:
        context.close()
