"""The web dashboard: static files the gateway serves at ``/ui/`` (``/`` redirects there).

Plain HTML, CSS and JavaScript modules shipped inside the package: no CDN, no
build step, nothing to install beyond Vexa itself. The page talks only to the
public API of the gateway that served it, sending the key a person typed in (kept
in the tab's ``sessionStorage``) as ``X-API-Key``; the live view authenticates its
WebSocket with a subprotocol, so the key never appears in a URL or a cookie.

A strict Content-Security-Policy (scripts and styles from this origin only, no
inline code, no framing) limits what an injected string could do: the scripts
also build the page with ``textContent``, never with HTML strings.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"
UI_PATH = "/ui/"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidate every time (ETag/Last-Modified make that a cheap 304): an upgrade of the
    # package must never leave a browser running half old, half new modules.
    "Cache-Control": "no-cache",
}


class _UIStatic(StaticFiles):
    """StaticFiles plus the dashboard's security headers on every file."""

    def file_response(self, full_path, stat_result, scope: Scope, status_code: int = 200) -> Response:  # type: ignore[no-untyped-def]
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(SECURITY_HEADERS)
        return response


router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse(UI_PATH, status_code=307)


@router.get("/ui")
@router.get("/ui/")
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=SECURITY_HEADERS)


def install(app: FastAPI) -> None:
    """Adds the dashboard's routes to the gateway."""
    app.include_router(router)
    app.mount("/ui/static", _UIStatic(directory=STATIC), name="ui-static")
