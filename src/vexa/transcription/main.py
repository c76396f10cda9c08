"""`vexa serve transcription`: load the model, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from vexa.logs import setup_logging
from vexa.transcription.engine import WhisperEngine
from vexa.transcription.models import ModelUnavailable, resolve_model
from vexa.transcription.server import TranscriptionServer
from vexa.transcription.settings import TranscriptionSettings

log = logging.getLogger("vexa.transcription")


def build_engine(settings: TranscriptionSettings) -> WhisperEngine:
    """Resolve and load the model (blocking); raises ModelUnavailable with instructions."""
    path = resolve_model(settings.whisper_model, settings.allow_model_download)
    engine = WhisperEngine(
        path,
        device=settings.device,
        compute_type=settings.resolved_compute_type(),
        cpu_threads=settings.cpu_threads,
        workers=settings.inference_workers,
        allow_download=settings.allow_model_download,
        min_window_s=settings.encoder_min_window_s,
        final_min_window_s=settings.final_encoder_min_window_s,
    )
    engine.load()
    return engine


async def serve(host: str, port: int, settings: TranscriptionSettings | None = None) -> None:
    settings = settings or TranscriptionSettings()
    loop = asyncio.get_running_loop()
    engine = await loop.run_in_executor(None, build_engine, settings)
    server = TranscriptionServer(settings, engine)
    await server.start(host, port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: %d session(s) open", len(server.sessions))
    await server.stop()


def run(host: str = "127.0.0.1", port: int = 9090) -> None:
    settings = TranscriptionSettings()
    setup_logging("transcription", settings.log_level)
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # one INFO line per decode is noise
    try:
        asyncio.run(serve(host, port, settings))
    except ModelUnavailable as exc:
        log.error("cannot start: %s", exc)
        print(f"vexa transcription: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
