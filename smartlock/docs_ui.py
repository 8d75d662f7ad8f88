"""Swagger UI (/docs) and ReDoc (/redoc) served from a local package, so the API docs work offline.

FastAPI's own pages load their scripts from a CDN: on a door lock's LAN without internet they stay
blank. The assets come from the ``fastapi-offline`` package (Swagger UI 5 and ReDoc, MIT). Not from
``swagger-ui-bundle``: it ships Swagger UI 4, which refuses FastAPI's OpenAPI 3.1 schema ("Unable to
render this definition"). Create the app with ``docs_url=None, redoc_url=None`` and call
``mount_api_docs(app)``; an API-key guard should let ``is_docs_path`` paths through.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

from smartlock.errors import DependencyMissing

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = f"{DOCS_URL}/assets"
OAUTH2_REDIRECT_URL = f"{DOCS_URL}/oauth2-redirect"
ASSETS_PACKAGE = "fastapi_offline"
ASSETS_INSTALL = "pip install fastapi-offline"
CACHE = {"Cache-Control": "public, max-age=86400"}
# file served -> media type; nothing else of the package is exposed
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}


def assets_dir() -> Path:
    """The folder of the built Swagger UI and ReDoc files inside the installed asset package."""
    spec = importlib.util.find_spec(ASSETS_PACKAGE)  # located, not imported
    if spec is None or not spec.submodule_search_locations:
        raise DependencyMissing(ASSETS_PACKAGE, "the offline API docs (/docs)", ASSETS_INSTALL)
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    missing = [name for name in ASSETS if not (folder / name).is_file()]
    if missing:
        raise DependencyMissing(ASSETS_PACKAGE, f"the offline API docs (missing {', '.join(missing)})",
                                f"pip install --force-reinstall {ASSETS_PACKAGE.replace('_', '-')}")
    return folder


def is_docs_path(path: str) -> bool:
    """True for the documentation pages and their assets (never the schema's operations)."""
    return path in (DOCS_URL, REDOC_URL) or path.startswith(f"{DOCS_URL}/")


def mount_api_docs(app: FastAPI, *, redoc: bool = True) -> None:
    """Serve Swagger UI at /docs (and ReDoc at /redoc) with every script, style and icon local.

    ``app`` must be created with ``docs_url=None`` and ``redoc_url=None`` (else FastAPI's CDN pages
    answer first). The pages read ``app.openapi_url`` and honour ``root_path`` behind a proxy prefix.
    """
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("create the FastAPI app with docs_url=None and redoc_url=None before mount_api_docs")
    if app.openapi_url is None:
        raise ValueError("the app has no OpenAPI schema (openapi_url=None): nothing to document")
    folder = assets_dir()
    openapi_url = app.openapi_url

    def prefix(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    async def swagger_page(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
            # null: no badge image fetched from validator.swagger.io
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        )

    async def redoc_page(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    def asset(path: Path, media_type: str) -> Callable[[], Awaitable[FileResponse]]:
        async def serve() -> FileResponse:
            return FileResponse(path, media_type=media_type, headers=CACHE)

        return serve

    app.add_api_route(DOCS_URL, swagger_page, methods=["GET"], include_in_schema=False)
    app.add_api_route(OAUTH2_REDIRECT_URL, oauth2_redirect, methods=["GET"], include_in_schema=False)
    if redoc:
        app.add_api_route(REDOC_URL, redoc_page, methods=["GET"], include_in_schema=False)
    for name, media_type in ASSETS.items():
        app.add_api_route(f"{ASSETS_URL}/{name}", asset(folder / name, media_type), methods=["GET"],
                          include_in_schema=False)
