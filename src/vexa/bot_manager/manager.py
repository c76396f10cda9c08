"""The bot-manager's request handling: start, stop and reconfigure bots, take their reports.

HTTP handlers (``app.py``) stay thin and call this. The parts it composes each
have one job: ``transitions.py`` (the persisted state machine), ``announcer.py``
(live events and webhooks), ``reconciler.py`` (bots that went away, orphans,
shutdown); ``errors.py`` holds the HTTP-carrying error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from vexa import bot_tokens
from vexa.auth import AuthenticatedUser
from vexa.bot_manager.announcer import Announcer
from vexa.bot_manager.bot_config import bot_config_json, build_bot_config, callback_token_matches
from vexa.bot_manager.errors import ServiceError
from vexa.bot_manager.lifecycle import ACTIVE_STATUSES, CompletionReason, IllegalTransition, is_terminal
from vexa.bot_manager.orchestrators.base import BotSpec, Orchestrator
from vexa.bot_manager.reconciler import Reconciler
from vexa.bot_manager.settings import BotManagerSettings
from vexa.bot_manager.transitions import MeetingTransitions
from vexa.db import Database
from vexa.db.models import Meeting, MeetingStatus, User
from vexa.meetings import CALLBACK_TOKEN_HASH_KEY, meeting_response
from vexa.platforms import meeting_url
from vexa.recordings.records import RECORDINGS_KEY, new_recording
from vexa.schemas import BotStatus, MeetingConfigUpdate, MeetingCreate, MeetingResponse
from vexa.webhooks.emit import WebhookEmitter

log = logging.getLogger(__name__)

S = MeetingStatus


def command_channel(meeting_id: int) -> str:
    return f"bot_commands:meeting:{meeting_id}"


class BotManager:
    """Owns the orchestrator and background work of one bot-manager process."""

    def __init__(
        self,
        settings: BotManagerSettings,
        db: Database,
        redis: Redis,
        orchestrator: Orchestrator,
        webhooks: WebhookEmitter,
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.orchestrator = orchestrator
        self.announcer = Announcer(redis, webhooks, settings.meeting_base_url)
        self.transitions = MeetingTransitions(
            db, redis, self.announcer, bot_token_grace_s=settings.bot_token_grace_s
        )
        self.reconciler = Reconciler(settings, db, orchestrator, self.transitions)
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- background task bookkeeping ------------------------------------------------------

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Stop background work (reconciler, pending hard stops); bounded in time."""
        self.reconciler.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)

    # --- POST /bots ---------------------------------------------------------------------------

    async def create_bot(self, user: AuthenticatedUser, req: MeetingCreate) -> MeetingResponse:
        """Record the request (limits checked under the user's row lock), then start its bot.

        The bot gets its own token for this one meeting, never the caller's API key.
        """
        bot_token, token_hash = bot_tokens.new_bot_token()
        meeting, data = await self._insert_requested_meeting(user, req, token_hash)
        log.info(
            "meeting %s requested by user %s (%s/%s)",
            meeting.id,
            user.user_id,
            meeting.platform,
            meeting.platform_specific_id,
        )
        await self.announcer.announce(meeting, None)
        return await self._start_bot(meeting, user, req, bot_token, data)

    async def _insert_requested_meeting(
        self, user: AuthenticatedUser, req: MeetingCreate, callback_hash: str
    ) -> tuple[Meeting, dict[str, Any]]:
        platform, native = req.platform.value, req.native_meeting_id
        data: dict[str, Any] = {
            "bot_name": req.bot_name or self.settings.default_bot_name,
            "language": req.language,
            "task": req.task or "transcribe",
            CALLBACK_TOKEN_HASH_KEY: callback_hash,
        }
        if req.custom_vocabulary:
            data["custom_vocabulary"] = req.custom_vocabulary
        if req.passcode:
            data["passcode"] = req.passcode
        now = datetime.now(UTC)
        data["status_transition"] = [
            {"from": None, "to": S.requested.value, "timestamp": now.isoformat(), "source": "api"}
        ]
        try:
            async with self.db.sessionmaker() as session, session.begin():
                # Lock the user's row: concurrent requests of one user are serialised here, so the
                # count below cannot be raced past max_concurrent_bots.
                user_row = (
                    await session.execute(select(User).where(User.id == user.user_id).with_for_update())
                ).scalar_one_or_none()
                if user_row is None:
                    raise ServiceError(403, "Invalid or revoked API key")
                existing = (
                    await session.execute(
                        select(Meeting.id, Meeting.status).where(
                            Meeting.user_id == user.user_id,
                            Meeting.platform == platform,
                            Meeting.platform_specific_id == native,
                            Meeting.status.in_(ACTIVE_STATUSES),
                        )
                    )
                ).first()
                if existing is not None:
                    raise ServiceError(
                        409,
                        f"An active bot already exists for {platform}/{native} "
                        f"(meeting {existing.id}, status {existing.status}).",
                    )
                active = (
                    await session.execute(
                        select(func.count())
                        .select_from(Meeting)
                        .where(Meeting.user_id == user.user_id, Meeting.status.in_(ACTIVE_STATUSES))
                    )
                ).scalar_one()
                limit = user_row.max_concurrent_bots
                if active >= limit:
                    raise ServiceError(429, f"User has reached the maximum concurrent bot limit ({limit}).")
                meeting = Meeting(
                    user_id=user.user_id,
                    platform=platform,
                    platform_specific_id=native,
                    status=S.requested.value,
                    data=data,
                )
                session.add(meeting)
                await session.flush()
                if self._records(req, user_row):
                    data = {**data, RECORDINGS_KEY: [new_recording(meeting.id)]}
                    meeting.data = data
                    await session.flush()
                await session.refresh(meeting)
        except IntegrityError as exc:  # the partial unique index: the database's last word on duplicates
            raise ServiceError(409, f"An active bot already exists for {platform}/{native}.") from exc
        return meeting, data

    def _records(self, req: MeetingCreate, user_row: User) -> bool:
        """The request's ``recording_enabled``, else the user's default, else the service's."""
        if req.recording_enabled is not None:
            return req.recording_enabled
        user_default = (user_row.data or {}).get("recording_enabled")
        if isinstance(user_default, bool):
            return user_default
        return self.settings.recording_enabled_default

    async def _start_bot(
        self,
        meeting: Meeting,
        user: AuthenticatedUser,
        req: MeetingCreate,
        bot_token: str,
        data: dict[str, Any],
    ) -> MeetingResponse:
        """Register the bot's token, start the bot and store its handle; a refused start fails the
        meeting (503)."""
        platform, native = req.platform.value, req.native_meeting_id
        claims = bot_tokens.BotTokenClaims(
            meeting_id=meeting.id,
            user_id=user.user_id,
            platform=platform,
            native_meeting_id=native,
            token_hash=data[CALLBACK_TOKEN_HASH_KEY],
        )
        url = meeting_url(platform, native, req.passcode, base_url=self.settings.meeting_base_url)
        config = build_bot_config(
            self.settings,
            meeting_id=meeting.id,
            platform=platform,
            native_meeting_id=native,
            meeting_url=url,
            bot_name=data["bot_name"],
            language=req.language,
            task=data["task"],
            custom_vocabulary=req.custom_vocabulary,
            recording_prefix=next((r["storage_prefix"] for r in data.get(RECORDINGS_KEY, [])), None),
        )
        spec = BotSpec(meeting.id, user.user_id, platform, native, bot_config_json(config), bot_token)
        try:
            await bot_tokens.register(self.redis, claims, self.settings.bot_token_ttl_s())
            handle = await self.orchestrator.start(spec)
        except Exception as exc:
            log.error("could not start a bot for meeting %s: %s", meeting.id, exc)
            with contextlib.suppress(IllegalTransition, ServiceError):
                await self.transitions.transition(
                    meeting.id,
                    S.failed,
                    reason=CompletionReason.join_error,
                    details={"error": "bot_start_failed", "message": f"could not start the bot: {exc}"},
                    source="bot_manager",
                )
            raise ServiceError(
                503, f"Could not start a bot ({self.orchestrator.kind} orchestrator): {exc}"
            ) from exc

        async with self.db.sessionmaker() as session, session.begin():
            await session.execute(
                update(Meeting).where(Meeting.id == meeting.id).values(bot_container_id=handle)
            )
            meeting = await session.get(Meeting, meeting.id, populate_existing=True)
        assert meeting is not None
        return meeting_response(meeting, self.settings.meeting_base_url)

    async def _find_active(self, user_id: int, platform: str, native: str) -> Meeting | None:
        async with self.db.sessionmaker() as session:
            return (
                await session.execute(
                    select(Meeting)
                    .where(
                        Meeting.user_id == user_id,
                        Meeting.platform == platform,
                        Meeting.platform_specific_id == native,
                        Meeting.status.in_(ACTIVE_STATUSES),
                    )
                    .order_by(Meeting.id.desc())
                )
            ).scalar_one_or_none()

    async def _publish_command(self, meeting_id: int, command: dict[str, Any]) -> None:
        try:
            await self.redis.publish(command_channel(meeting_id), json.dumps(command))
        except RedisError as exc:
            raise ServiceError(503, "Could not reach the bot command channel (Redis).") from exc

    async def stop_bot(self, user: AuthenticatedUser, platform: str, native: str) -> Meeting:
        meeting = await self._find_active(user.user_id, platform, native)
        if meeting is None:
            raise ServiceError(404, f"No active bot found for {platform}/{native}.")
        if meeting.status != S.stopping:
            try:
                meeting, _ = await self.transitions.transition(meeting.id, S.stopping, source="user")
            except IllegalTransition as exc:  # it ended meanwhile
                raise ServiceError(404, f"No active bot found for {platform}/{native}.") from exc
        await self._publish_command(meeting.id, {"action": "leave"})
        log.info(
            "meeting %s: leave requested; hard stop in %.1fs", meeting.id, self.settings.bot_stop_timeout_s
        )
        self.spawn(self._hard_stop_later(meeting.id), name=f"hard-stop-{meeting.id}")
        return meeting

    async def _hard_stop_later(self, meeting_id: int) -> None:
        await asyncio.sleep(self.settings.bot_stop_timeout_s)
        async with self.db.sessionmaker() as session:
            meeting = await session.get(Meeting, meeting_id)
        if meeting is None or is_terminal(meeting.status):
            return
        handle = meeting.bot_container_id
        if handle:
            info = await self.orchestrator.status(handle)
            if info is not None and info.state == "running":
                log.warning("meeting %s: bot %s still running after leave; stopping it", meeting_id, handle)
                await self.orchestrator.stop(handle, timeout_s=5.0)
            await self.reconciler.handle_bot_gone(handle, info.exit_code if info else None)
        else:
            with contextlib.suppress(IllegalTransition):
                await self.transitions.transition(
                    meeting_id, S.completed, reason=CompletionReason.stopped, source="bot_manager"
                )

    async def reconfigure(
        self, user: AuthenticatedUser, platform: str, native: str, update_: MeetingConfigUpdate
    ) -> Meeting:
        meeting = await self._find_active(user.user_id, platform, native)
        if meeting is None:
            raise ServiceError(404, f"No active meeting found for {platform}/{native}.")
        if meeting.status != S.active:
            raise ServiceError(
                409, f"Meeting {meeting.id} is not active (status: {meeting.status}); cannot reconfigure yet."
            )
        changes = update_.model_dump(exclude_none=True)
        if not changes:
            raise ServiceError(422, "Give at least one of 'language' or 'task'.")
        async with self.db.sessionmaker() as session, session.begin():
            row = await session.get(Meeting, meeting.id, with_for_update=True)
            assert row is not None
            row.data = {**(row.data or {}), **changes}
            meeting = row
        await self._publish_command(meeting.id, {"action": "reconfigure", **changes})
        log.info("meeting %s: reconfigure %s sent", meeting.id, sorted(changes))
        return meeting

    async def bot_callback(
        self,
        meeting_id: int,
        token: str | None,
        status: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        participants: list[str] | None = None,
    ) -> tuple[Meeting, bool]:
        """A bot's status report; the token is checked against the meeting's stored hash."""
        if not token:
            raise ServiceError(401, "Missing X-Bot-Token header.")
        async with self.db.sessionmaker() as session:
            stored = (
                await session.execute(
                    select(Meeting.data[CALLBACK_TOKEN_HASH_KEY].astext).where(Meeting.id == meeting_id)
                )
            ).scalar_one_or_none()
        if not callback_token_matches(token, stored):
            raise ServiceError(403, "Invalid bot token for this meeting.")
        return await self.transitions.transition(
            meeting_id, status, reason=reason, details=details, participants=participants, source="bot"
        )

    async def running_bots(self, user_id: int) -> list[BotStatus]:
        async with self.db.read_sessionmaker() as session:  # one SELECT: no transaction needed
            meetings = (
                await session.execute(
                    select(Meeting).where(
                        Meeting.user_id == user_id,
                        Meeting.status.in_(ACTIVE_STATUSES),
                        Meeting.bot_container_id.is_not(None),
                    )
                )
            ).scalars()
            by_handle = {m.bot_container_id: m for m in meetings}
        out = []
        for info in await self.orchestrator.list():
            meeting = by_handle.get(info.handle)
            if meeting is None or info.state != "running":
                continue
            out.append(
                BotStatus(
                    container_id=info.handle,
                    container_name=info.name,
                    platform=meeting.platform,
                    native_meeting_id=meeting.platform_specific_id,
                    status=info.state,
                    created_at=info.created_at,
                    labels=info.labels,
                    meeting_id_from_name=str(meeting.id),
                    meeting_id=meeting.id,
                )
            )
        return out
