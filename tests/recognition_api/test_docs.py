"""/docs and /redoc work offline: every script, style and icon is served by the service itself."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import FastAPI

from smartlock.docs_ui import ASSETS, ASSETS_URL, is_docs_path, mount_api_docs
from smartlock.recognition.api import create_app
from tests.recognition_api.conftest import Served, recognition_service
from tests.recognition_api.fakes import FakeRecognizer
from tests.support import uvicorn_server

# src= and href= attributes of the page (the Swagger UI page names its assets there)
REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def references(html: str) -> list[str]:
    return REFERENCE.findall(html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_pages_name_only_local_assets(served: Served, page: str) -> None:
    response = served.http.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "cdn." not in html and "googleapis" not in html and "jsdelivr" not in html
    assets = references(html)
    assert assets, html
    for url in assets:
        assert url.startswith(f"{ASSETS_URL}/"), url  # no http://, https:// or //host URL
        asset = served.http.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
        assert asset.headers["content-type"].split(";")[0] == ASSETS[url.rsplit("/", 1)[1]].split(";")[0]
    assert "'/openapi.json'" in html or '"/openapi.json"' in html


def test_swagger_ui_assets_are_the_real_bundle(served: Served) -> None:
    script = served.http.get(f"{ASSETS_URL}/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in script
    assert ".swagger-ui" in served.http.get(f"{ASSETS_URL}/swagger-ui.css").text
    assert served.http.get(f"{ASSETS_URL}/favicon.png").content[:8] == b"\x89PNG\r\n\x1a\n"
    assert served.http.get("/docs/oauth2-redirect").status_code == 200
    # only the named files are served: nothing else of the package, no path walking
    for path in (f"{ASSETS_URL}/core.py", f"{ASSETS_URL}/../openapi.json", f"{ASSETS_URL}/%2E%2E/core.py"):
        assert served.http.get(path).status_code == 404, path
    schema = served.http.get("/openapi.json").json()
    assert not any(is_docs_path(path) for path in schema["paths"])  # the docs are not API operations


def test_docs_need_no_api_key_but_the_api_still_does() -> None:
    with uvicorn_server(create_app(FakeRecognizer(), api_key="k")) as url:
        for path in ("/docs", "/redoc", "/docs/oauth2-redirect", "/openapi.json",
                     *(f"{ASSETS_URL}/{name}" for name in ASSETS)):
            assert httpx.get(url + path, timeout=30).status_code == 200, path
        assert httpx.get(f"{url}/docs/../people", timeout=30).status_code in (401, 404)
        assert httpx.get(f"{url}/people", timeout=30).status_code == 401


def test_root_path_prefixes_every_url() -> None:
    """Behind a proxy that serves the API under /recognition (uvicorn --root-path), the page's URLs
    carry the prefix."""
    app = FastAPI(docs_url=None, redoc_url=None)
    mount_api_docs(app)

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, root_path="/recognition")
        async with httpx.AsyncClient(transport=transport, base_url="http://lan") as client:
            return await client.get("/recognition/docs")

    response = anyio.run(fetch)
    assert response.status_code == 200
    html = response.text
    assert all(u.startswith(f"/recognition{ASSETS_URL}/") for u in references(html)), html
    assert "/recognition/openapi.json" in html


def test_mounting_over_fastapis_cdn_pages_is_refused() -> None:
    with pytest.raises(ValueError, match="docs_url=None"):
        mount_api_docs(FastAPI())


def _chromium() -> str:
    pytest.importorskip("playwright.sync_api")
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


@pytest.mark.faces
@pytest.mark.slow
def test_swagger_ui_renders_in_a_browser_with_the_internet_cut_off(tmp_path: Path) -> None:
    """The real service (empty arcface gallery, API key on) in headless Chromium: every request that
    leaves 127.0.0.1 is refused, and the page still lists the API's operations."""
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    from tests.recognition.conftest import load_backend

    load_backend("arcface")  # the service's default backend; skips when not installed
    key_file = tmp_path / "key"
    key_file.write_text("docs-test-key")
    key_file.chmod(0o600)
    with recognition_service(tmp_path / "model", tmp_path, "--api-key-file", str(key_file)) as service, \
            sync_playwright() as playwright:
        url = service.url
        browser = playwright.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        try:
            page = browser.new_page()
            outside: list[str] = []

            def only_loopback(route) -> None:
                if route.request.url.startswith(f"{url}/"):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_loopback)
            page.goto(f"{url}/docs")
            page.locator(".opblock-summary-path", has_text="/face-recognition").first.wait_for(timeout=60_000)
            text = page.inner_text("body")
        finally:
            browser.close()
    assert outside == []
    assert "smartlock Face Recognition API" in text and "OAS 3.1" in text
    assert "/people/{name}/images" in text
    assert "Unable to render" not in text
