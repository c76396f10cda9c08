"""`vexa serve admin`: run admin-api with uvicorn until SIGTERM."""

from __future__ import annotations

from vexa.admin.settings import AdminSettings
from vexa.service import serve


def run(host: str = "127.0.0.1", port: int = 8057) -> None:
    from vexa.admin.app import create_app

    serve("admin-api", AdminSettings(), create_app, host, port)
