"""`vexa serve collector`: run the transcription collector with uvicorn until SIGTERM."""

from __future__ import annotations

import sys

import uvicorn

from vexa.collector.settings import CollectorSettings
from vexa.logs import setup_logging


def run(host: str = "127.0.0.1", port: int = 8123) -> None:
    settings = CollectorSettings()
    setup_logging("transcription-collector", settings.log_level)
    try:
        from vexa.collector.app import create_app

        app = create_app(settings)
    except RuntimeError as exc:  # no database / Redis / broken filter config: say so plainly
        print(f"transcription-collector: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
