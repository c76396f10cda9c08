"""transcription-collector: stream consumers, the background persister and the HTTP API in one process."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from sqlalchemy import text

from vexa.auth import TokenVerifier
from vexa.collector import api, hot, metrics, recordings_api
from vexa.collector.consumer import StreamWorker
from vexa.collector.filters import TranscriptionFilter
from vexa.collector.handlers import SegmentHandler, SpeakerHandler
from vexa.collector.meetings import MeetingDirectory
from vexa.collector.persistence import Persister
from vexa.collector.postprocess import PostProcessor
from vexa.collector.retention import run_retention
from vexa.collector.settings import CollectorSettings
from vexa.collector.transcript_cache import TranscriptCache
from vexa.collector.trimming import StreamTrimmer, measure
from vexa.db import Database
from vexa.db.reads import ReadPool
from vexa.hot_routes import HotRoutes
from vexa.metrics import add_metrics_route
from vexa.recordings.storage import StorageError, open_storage
from vexa.service import add_error_handler, data_services
from vexa.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class Collector:
    """The moving parts, built from settings; tests drive them directly (``read_once``, ``run_once``)."""

    def __init__(
        self, settings: CollectorSettings, db: Database, redis: Redis, verifier: TokenVerifier
    ) -> None:
        self.settings = settings
        self.db, self.redis, self.verifier = db, redis, verifier
        self.directory = MeetingDirectory(db.sessionmaker, ttl_s=settings.meeting_cache_ttl_s)
        self.filter = TranscriptionFilter.from_config(settings.filter_config_path)
        self.segments = StreamWorker(
            redis,
            stream=settings.redis_stream_name,
            group=settings.redis_consumer_group,
            consumer=settings.consumer_name,
            dead_stream=settings.dead_letter_stream,
            dead_maxlen=settings.dead_letter_maxlen,
            handler=SegmentHandler(
                redis, self.directory, verifier, min_confidence=settings.speaker_min_confidence
            ),
            count=settings.redis_stream_read_count,
            block_ms=settings.redis_stream_block_ms,
            claim_idle_ms=settings.pending_msg_timeout_ms,
            claim_interval_s=settings.pending_claim_interval_s,
            name="segments",
        )
        self.speakers = StreamWorker(
            redis,
            stream=settings.speaker_events_stream,
            group=settings.speaker_consumer_group,
            consumer=settings.consumer_name,
            dead_stream=settings.speaker_dead_letter_stream,
            dead_maxlen=settings.dead_letter_maxlen,
            handler=SpeakerHandler(redis, verifier, ttl_s=settings.speaker_events_ttl),
            count=max(settings.redis_stream_read_count, 50),
            block_ms=settings.redis_stream_block_ms,
            claim_idle_ms=settings.pending_msg_timeout_ms,
            claim_interval_s=settings.pending_claim_interval_s,
            name="speakers",
        )
        self.persister = Persister(
            redis,
            db.sessionmaker,
            self.filter,
            immutability_threshold_s=settings.immutability_threshold,
            speaker_min_confidence=settings.speaker_min_confidence,
            interval_s=settings.background_task_interval,
            dead_stream=settings.dead_letter_stream,
            dead_maxlen=settings.dead_letter_maxlen,
        )
        self.trimmer = StreamTrimmer(
            redis,
            [settings.redis_stream_name, settings.speaker_events_stream],
            interval_s=settings.stream_trim_interval_s,
        )
        self.storage = open_storage(settings)
        self.postprocessor = PostProcessor(
            settings,
            redis,
            db.sessionmaker,
            self.storage,
            consumer=settings.consumer_name,
            speaker_min_confidence=settings.speaker_min_confidence,
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.segments.ensure_group()
        await self.speakers.ensure_group()
        self._tasks = [
            asyncio.create_task(self.segments.run(), name="collector-segments"),
            asyncio.create_task(self.speakers.run(), name="collector-speakers"),
            asyncio.create_task(self.persister.run(), name="collector-persister"),
            asyncio.create_task(self.trimmer.run(), name="collector-trimmer"),
            asyncio.create_task(
                run_retention(
                    self.db.sessionmaker,
                    self.storage,
                    self.settings.recording_retention_days,
                    self.settings.retention_interval_s,
                ),
                name="collector-retention",
            ),
        ]
        if self.settings.postprocess_enabled:
            self._tasks.append(asyncio.create_task(self.postprocessor.run(), name="collector-postprocess"))
        log.info(
            "collector consuming %s (group %s) and %s (group %s) as %s",
            self.settings.redis_stream_name,
            self.settings.redis_consumer_group,
            self.settings.speaker_events_stream,
            self.settings.speaker_consumer_group,
            self.settings.consumer_name,
        )

    async def stop(self) -> None:
        """Cancel mid-batch if need be: unacknowledged messages are retried by whoever runs next."""
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        await self.postprocessor.close()


def create_app(settings: CollectorSettings | None = None, *, run_workers: bool = True) -> FastAPI:
    """``run_workers=False`` serves the API only (tests that drive the workers themselves)."""
    settings = settings or CollectorSettings()
    settings.async_database_url(), settings.redis_url()  # fail fast, with the config's message
    TranscriptionFilter.from_config(settings.filter_config_path)  # a broken filter_config.py fails startup

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reads = ReadPool(settings.async_database_url(), max_size=settings.db_pool_size)
        async with data_services(settings, app, encoding_errors="replace") as stores, reads:
            app.state.reads = reads
            collector = Collector(settings, stores.db, stores.redis, stores.verifier)
            app.state.collector, app.state.directory = collector, collector.directory
            app.state.recording_storage = collector.storage
            if run_workers:
                await collector.start()
            # What startup built (modules, settings, pools) lives as long as the process: frozen,
            # the full collections that a busy consumer's allocations trigger no longer walk it.
            gc.freeze()
            log.info("transcription-collector ready")
            try:
                yield
            finally:
                await collector.stop()

    app = FastAPI(
        title="Vexa transcription collector",
        version="1.0",
        description="Meetings and transcripts; consumes the transcription stream.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.transcript_cache = TranscriptCache(settings.transcript_cache_bytes)

    add_error_handler(app, "transcription-collector")

    @app.exception_handler(StorageError)
    async def _storage_error(_: Request, exc: StorageError) -> JSONResponse:
        log.error("recording storage: %s", exc)
        return JSONResponse(
            {"detail": "Recording storage is unavailable; try again shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.get("/health", tags=["health"])
    async def health(request: Request) -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(request.app.state.redis.ping(), 2.0)
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}"
        try:
            async with request.app.state.db.session() as session:
                await asyncio.wait_for(session.execute(text("SELECT 1")), 2.0)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        healthy = all(v == "ok" for v in checks.values())
        body: dict[str, object] = {
            "status": "ok" if healthy else "degraded",
            "service": "transcription-collector",
            **checks,
        }
        if healthy:  # how far behind the streams are: entries not yet delivered, and unacknowledged
            with contextlib.suppress(Exception):
                streams = request.app.state.collector.trimmer.streams
                body["streams"] = {
                    name: (await asyncio.wait_for(measure(request.app.state.redis, name), 2.0)).as_dict()
                    for name in streams
                }
        return JSONResponse(body, status_code=200 if healthy else 503)

    app.add_middleware(HotRoutes, state=app.state, routes=hot.ROUTES)
    add_metrics_route(app, metrics.refresh)
    app.include_router(api.router)
    app.include_router(recordings_api.router)
    return app
