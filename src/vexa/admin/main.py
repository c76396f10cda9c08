"""`vexa serve admin`: run admin-api with uvicorn until SIGTERM."""

from __future__ import annotations

import sys

import uvicorn

from vexa.admin.settings import AdminSettings
from vexa.logs import setup_logging


def run(host: str = "127.0.0.1", port: int = 8057) -> None:
    settings = AdminSettings()
    setup_logging("admin-api", settings.log_level)
    try:
        from vexa.admin.app import create_app

        app = create_app(settings)
    except RuntimeError as exc:  # missing ADMIN_API_TOKEN / database: say so plainly, no traceback
        print(f"admin-api: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
