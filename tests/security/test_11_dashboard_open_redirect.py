"""Row 11: `next=` after sign-in leads only to a path of the dashboard itself, never to another site.

Attacked: the dashboard served as `up` serves it (real uvicorn on 127.0.0.1, fake collaborators). The
server decides where a sign-in leads (the login API's ``next``, and ``/login?next=`` once signed in); the
sign-in page only follows it. Also checked in headless Chromium where it is installed, since browsers
read a backslash as a slash and drop tabs and newlines from URLs.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from smartlock.web.routes.guards import CSRF_HEADER, safe_next
from smartlock.web.routes.pages import STATIC_DIR
from tests.web.conftest import CREDENTIALS, PASSWORD, USERNAME
from tests.web.serve_dashboard import fake_dashboard, served

pytestmark = pytest.mark.timeout(180)

FOREIGN = [
    "/\\evil.example/x", "//evil.example", "https://evil.example", "/%5Cevil", "/%5C%5Cevil.example/x",
    "/\t/evil.example", "/\n/evil.example", "\t//evil.example", "/%09/evil.example", "/%2F/evil.example",
    "%2F%2Fevil.example", "http:/evil.example", "javascript:alert(1)", "evil.example", "",
]
OWN = ["/events", "/people?x=1", "/live#top"]


def test_sign_in_leads_only_to_own_paths(tmp_path: Path) -> None:
    dashboard = fake_dashboard(tmp_path)
    with served(dashboard) as url, httpx.Client(base_url=url, headers={CSRF_HEADER: "1"}) as client:
        for target in FOREIGN:
            answer = client.post("/api/auth/login", json={**CREDENTIALS, "next": target})
            assert answer.status_code == 200 and answer.json()["next"] == "/", target
            page = client.get(f"/login?next={quote(target, safe='')}")
            assert page.status_code == 303 and page.headers["location"] == "/", target
        for target in OWN:
            assert client.post("/api/auth/login", json={**CREDENTIALS, "next": target}
                               ).json()["next"] == target
            assert client.get(f"/login?next={quote(target, safe='')}").headers["location"] == target
        assert client.get("/").headers["location"] == "/live"  # where "/" leads a signed-in browser
    # the page follows the server's answer, and has no rule of its own to get wrong
    assert "answer.next" in (STATIC_DIR / "login.js").read_text()
    assert all(safe_next(target) == "/" for target in FOREIGN)


def test_sign_in_in_a_browser_stays_on_the_dashboard(tmp_path: Path) -> None:
    chromium_path = Path("/usr/bin/chromium")
    if not chromium_path.exists():
        pytest.skip("needs Debian's chromium (/usr/bin/chromium): scripts/test installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (test extra)")
    dashboard = fake_dashboard(tmp_path)
    with served(dashboard) as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path),
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            for target in ("/\\evil.example/x", "/%5Cevil.example", "/\t/evil.example"):
                page = browser.new_page()
                page.goto(f"{url}/login?next={quote(target, safe='')}")
                page.fill("#username", USERNAME)
                page.fill("#password", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(f"{url}/live")  # "/" -> /live, on the dashboard
                assert page.url == f"{url}/live", target
                page.close()
        finally:
            browser.close()
