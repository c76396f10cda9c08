"""`vexa serve collector`: run the transcription-collector with uvicorn until SIGTERM."""

from __future__ import annotations

from vexa.collector.settings import CollectorSettings
from vexa.service import serve


def run(host: str = "127.0.0.1", port: int = 8123) -> None:
    from vexa.collector.app import create_app

    serve("transcription-collector", CollectorSettings(), create_app, host, port)
