"""The web dashboard: static files the gateway serves at ``/ui/`` (``/`` redirects there).

Plain HTML, CSS and JavaScript modules shipped inside the package: no CDN, no
build step, nothing to install beyond Vexa itself. The page talks only to the
public API of the gateway that served it, sending the key a person typed in (kept
in the tab's ``sessionStorage``) as ``X-API-Key``; the live view authenticates its
WebSocket with a subprotocol, so the key never appears in a URL or a cookie.

Loading fast without a bundler: the assets live under a path named after a hash of
their content (``/ui/assets/<hash>/...``), so browsers cache them for good and an
upgrade changes the path; only ``index.html`` is revalidated. It names every module
with ``<link rel="modulepreload">``, so the browser fetches them all at once instead
of discovering imports one level at a time.

A strict Content-Security-Policy (scripts and styles from this origin only, no
inline code, no framing) limits what an injected string could do: the scripts
also build the page with ``textContent``, never with HTML strings.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"
UI_PATH = "/ui/"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src blob:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
IMMUTABLE = "public, max-age=31536000, immutable"


def _assets() -> list[Path]:
    return sorted(p for p in STATIC.rglob("*") if p.is_file() and p.name != "index.html")


def asset_version() -> str:
    """A hash of every asset's path and bytes: a new release, a new asset path."""
    digest = hashlib.sha256()
    for path in _assets():
        digest.update(path.relative_to(STATIC).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def render_index(assets_url: str) -> str:
    preload = "\n".join(
        f'  <link rel="modulepreload" href="{assets_url}/{p.relative_to(STATIC).as_posix()}">'
        for p in _assets()
        if p.suffix == ".js"
    )
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    return html.replace("{{PRELOAD}}", preload).replace("{{ASSETS}}", assets_url)


class _Assets(StaticFiles):
    """StaticFiles with the security headers and a year of caching (the path changes with the content)."""

    def file_response(self, full_path, stat_result, scope: Scope, status_code: int = 200) -> Response:  # type: ignore[no-untyped-def]
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = IMMUTABLE
        return response


def install(app: FastAPI) -> None:
    """Adds the dashboard's routes to the gateway (hashing the assets once, at startup)."""
    assets_url = f"/ui/assets/{asset_version()}"
    index_html = render_index(assets_url)
    # index.html is revalidated on every load: it is what points at the current assets.
    index_headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def root() -> RedirectResponse:
        return RedirectResponse(UI_PATH, status_code=307)

    @router.get("/ui")
    @router.get("/ui/")
    async def index() -> HTMLResponse:
        return HTMLResponse(index_html, headers=index_headers)

    app.include_router(router)
    app.mount(assets_url, _Assets(directory=STATIC), name="ui-assets")
