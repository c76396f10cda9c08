"""The bot-manager's HTTP API: start/stop/reconfigure bots, bot status callbacks.

Public routes authenticate with the user's ``X-API-Key`` (the gateway forwards
it); the one internal route, the bot's status callback, authenticates with the
per-meeting ``X-Bot-Token`` instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from vexa.auth import AuthenticatedUser, require_user
from vexa.bot_manager import metrics
from vexa.bot_manager.errors import ServiceError
from vexa.bot_manager.lifecycle import CompletionReason, IllegalTransition
from vexa.bot_manager.manager import BotManager
from vexa.bot_manager.orchestrators import Orchestrator, create_orchestrator
from vexa.bot_manager.settings import BotManagerSettings
from vexa.metrics import add_metrics_route
from vexa.platforms import Platform
from vexa.schemas import (
    BotStatusResponse,
    ErrorResponse,
    MeetingConfigUpdate,
    MeetingCreate,
    MeetingResponse,
    MessageResponse,
)
from vexa.service import DataServices, data_services
from vexa.webhooks.emit import WebhookEmitter
from vexa.webhooks.worker import WebhookWorker

log = logging.getLogger(__name__)


class StatusCallback(BaseModel):
    """What a bot POSTs to /bots/internal/callback/status (docs/CONTRACTS.md)."""

    model_config = ConfigDict(extra="ignore")

    meeting_id: int
    status: Literal["joining", "awaiting_admission", "active", "completed", "failed"]
    reason: CompletionReason | None = None
    details: dict[str, Any] | None = None
    participants: list[str] | None = Field(None, max_length=1000)


class CallbackResponse(BaseModel):
    meeting_id: int
    status: str
    changed: bool


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 429, 503)
}


def _manager(request: Request) -> BotManager:
    return request.app.state.manager


@asynccontextmanager
async def _bot_manager(
    app: FastAPI, settings: BotManagerSettings, stores: DataServices, orchestrator: Orchestrator | None
) -> AsyncIterator[BotManager]:
    """The manager, its webhook worker and its watcher; on shutdown every bot is stopped."""
    webhooks = WebhookWorker(
        stores.redis,
        stores.db.sessionmaker,
        allow_private=settings.webhook_allow_private_urls,
        legacy_bearer=settings.webhook_legacy_bearer,
        retry_base_s=settings.webhook_retry_base_s,
        max_delay_s=settings.webhook_retry_max_delay_s,
        retry_for_s=settings.webhook_retry_for_s,
        timeout_s=settings.webhook_timeout_s,
    )
    orch = orchestrator or create_orchestrator(settings)
    manager = BotManager(
        settings, stores.db, stores.redis, orch, WebhookEmitter(stores.redis, stores.db.sessionmaker)
    )
    app.state.settings = settings
    app.state.manager = manager
    # Strong references: the event loop keeps only weak ones to tasks.
    app.state.webhook_worker = asyncio.create_task(webhooks.run(), name="webhook-worker")
    # Before the first reconcile pass: bots an earlier (killed) manager left running are
    # adopted, so their meetings are not failed as "gone"; the pass then stops any whose
    # meeting has already ended.
    adopted = await orch.adopt()
    if adopted:
        log.warning("adopted %d bot(s) left running by an earlier bot-manager", len(adopted))
    manager.spawn(manager.reconciler.run(), name="bot-reconciler")
    log.info("bot-manager ready (orchestrator=%s)", orch.kind)
    try:
        yield manager
    finally:
        await manager.close()  # the reconciler and pending hard stops
        await manager.reconciler.shutdown_bots()
        await webhooks.close()


def create_app(
    settings: BotManagerSettings | None = None, *, orchestrator: Orchestrator | None = None
) -> FastAPI:
    """The app; ``orchestrator`` may be passed in (tests inject stand-ins for outside engines)."""
    settings = settings or BotManagerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with data_services(settings, app) as stores, _bot_manager(app, settings, stores, orchestrator):
            yield

    app = FastAPI(
        title="Vexa bot-manager",
        version="1.0",
        lifespan=lifespan,
        description="Starts and stops meeting bots and tracks each meeting's lifecycle.",
    )

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(IllegalTransition)
    async def _illegal(_: Request, exc: IllegalTransition) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    add_metrics_route(app, metrics.refresh)

    @app.get("/health")
    async def health(request: Request) -> dict[str, str]:
        return {"status": "ok", "service": "bot-manager", "orchestrator": _manager(request).orchestrator.kind}

    @app.post("/bots", status_code=201, response_model=MeetingResponse, responses=_ERRORS)
    async def request_bot(
        body: MeetingCreate,
        request: Request,
        user: AuthenticatedUser = Depends(require_user),
    ) -> MeetingResponse:
        """Send a bot into a meeting (one per user + platform + meeting id at a time)."""
        return await _manager(request).create_bot(user, body)

    @app.delete(
        "/bots/{platform}/{native_meeting_id}",
        status_code=202,
        response_model=MessageResponse,
        responses=_ERRORS,
    )
    async def stop_bot(
        platform: Platform,
        native_meeting_id: str,
        request: Request,
        user: AuthenticatedUser = Depends(require_user),
    ) -> MessageResponse:
        """Ask the bot to leave; it is stopped by force after BOT_STOP_TIMEOUT_S."""
        await _manager(request).stop_bot(user, platform.value, native_meeting_id)
        return MessageResponse(message="Stop request accepted and is being processed.")

    @app.put(
        "/bots/{platform}/{native_meeting_id}/config",
        status_code=202,
        response_model=MessageResponse,
        responses=_ERRORS,
    )
    async def reconfigure_bot(
        platform: Platform,
        native_meeting_id: str,
        body: MeetingConfigUpdate,
        request: Request,
        user: AuthenticatedUser = Depends(require_user),
    ) -> MessageResponse:
        """Change the language/task of a running bot's transcription."""
        await _manager(request).reconfigure(user, platform.value, native_meeting_id, body)
        return MessageResponse(message="Reconfiguration request accepted and sent to the bot.")

    @app.get("/bots/status", response_model=BotStatusResponse, responses=_ERRORS)
    async def bots_status(
        request: Request, user: AuthenticatedUser = Depends(require_user)
    ) -> BotStatusResponse:
        """The caller's bots that are running now."""
        return BotStatusResponse(running_bots=await _manager(request).running_bots(user.user_id))

    @app.post("/bots/internal/callback/status", response_model=CallbackResponse, responses=_ERRORS)
    async def status_callback(
        body: StatusCallback,
        request: Request,
        x_bot_token: str | None = Header(None, alias="X-Bot-Token"),
    ) -> CallbackResponse:
        """For bots only: report a lifecycle step (authenticated by the meeting's bot token)."""
        meeting, changed = await _manager(request).bot_callback(
            body.meeting_id,
            x_bot_token,
            body.status,
            reason=body.reason.value if body.reason else None,
            details=body.details,
            participants=body.participants,
        )
        return CallbackResponse(meeting_id=meeting.id, status=meeting.status, changed=changed)

    # Kept importable for callers that want the public shape of a row.
    return app
