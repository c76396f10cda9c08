"""The bot-manager's logic: start and stop bots, move meetings through their lifecycle.

HTTP handlers (``app.py``) stay thin and call this. Every status change goes
through ``transition``, which locks the meeting row, checks the transitions
table, records history and times, commits, and only then announces the change
(live event + webhook), so subscribers never see a status the database does
not have.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from vexa.auth import AuthenticatedUser
from vexa.bots.bot_config import (
    bot_config_json,
    build_bot_config,
    callback_token_matches,
    new_callback_token,
)
from vexa.bots.lifecycle import (
    ACTIVE_STATUSES,
    CompletionReason,
    IllegalTransition,
    check_transition,
    is_terminal,
)
from vexa.bots.orchestrators.base import BotSpec, Orchestrator
from vexa.bots.settings import BotManagerSettings
from vexa.bots.transcript_summary import merge_unique, transcript_speakers_and_languages
from vexa.bots.webhooks import WebhookDispatcher
from vexa.db import Database
from vexa.db.models import Meeting, MeetingStatus, User
from vexa.events import publish_event
from vexa.meetings import CALLBACK_TOKEN_HASH_KEY
from vexa.meetings import meeting_response as shared_meeting_response
from vexa.platforms import meeting_url
from vexa.schemas import BotStatus, MeetingConfigUpdate, MeetingCreate, MeetingResponse

log = logging.getLogger("vexa.bots.manager")

S = MeetingStatus


class ServiceError(Exception):
    """An error with an HTTP status and a sentence for the caller."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def command_channel(meeting_id: int) -> str:
    return f"bot_commands:meeting:{meeting_id}"


def meeting_response(meeting: Meeting, settings: BotManagerSettings) -> MeetingResponse:
    """The public shape; internal keys (the callback token hash) are left out."""
    return shared_meeting_response(meeting, settings.meeting_base_url)


class BotManager:
    """Owns the orchestrator and background work of one bot-manager process."""

    def __init__(
        self,
        settings: BotManagerSettings,
        db: Database,
        redis: Redis,
        orchestrator: Orchestrator,
        webhooks: WebhookDispatcher,
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.orchestrator = orchestrator
        self.webhooks = webhooks
        self._tasks: set[asyncio.Task[Any]] = set()
        # A flag as well as cancel(): on Python 3.11 a cancel that lands while a driver's
        # wait_for is completing can be swallowed, and a loop must still end at shutdown.
        self._stopping = asyncio.Event()
        orchestrator.on_exit = self.handle_bot_gone

    # --- background task bookkeeping ------------------------------------------------------

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Stop background work (reconciler, pending hard stops); bounded in time."""
        self._stopping.set()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)

    # --- POST /bots ---------------------------------------------------------------------------

    async def create_bot(
        self, user: AuthenticatedUser, user_token: str, req: MeetingCreate
    ) -> MeetingResponse:
        platform, native = req.platform.value, req.native_meeting_id
        callback_token, callback_hash = new_callback_token()
        url = meeting_url(platform, native, req.passcode, base_url=self.settings.meeting_base_url)
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
                    raise ServiceError(403, f"User has reached the maximum concurrent bot limit ({limit}).")
                meeting = Meeting(
                    user_id=user.user_id,
                    platform=platform,
                    platform_specific_id=native,
                    status=S.requested.value,
                    data=data,
                )
                session.add(meeting)
                await session.flush()
                await session.refresh(meeting)
        except IntegrityError as exc:  # the partial unique index: the database's last word on duplicates
            raise ServiceError(409, f"An active bot already exists for {platform}/{native}.") from exc

        log.info("meeting %s requested by user %s (%s/%s)", meeting.id, user.user_id, platform, native)
        await self._announce(meeting, None)

        config = build_bot_config(
            self.settings,
            meeting_id=meeting.id,
            platform=platform,
            native_meeting_id=native,
            meeting_url=url,
            user_token=user_token,
            callback_token=callback_token,
            bot_name=data["bot_name"],
            language=req.language,
            task=data["task"],
            custom_vocabulary=req.custom_vocabulary,
        )
        spec = BotSpec(meeting.id, user.user_id, platform, native, bot_config_json(config))
        try:
            handle = await self.orchestrator.start(spec)
        except Exception as exc:
            log.error("could not start a bot for meeting %s: %s", meeting.id, exc)
            with contextlib.suppress(IllegalTransition, ServiceError):
                await self.transition(
                    meeting.id,
                    S.failed,
                    reason=CompletionReason.join_error,
                    details={"error": "bot_start_failed", "message": str(exc)},
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
        return meeting_response(meeting, self.settings)

    # --- lookups --------------------------------------------------------------------------------

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

    # --- DELETE /bots/{platform}/{native} ---------------------------------------------------

    async def stop_bot(self, user: AuthenticatedUser, platform: str, native: str) -> Meeting:
        meeting = await self._find_active(user.user_id, platform, native)
        if meeting is None:
            raise ServiceError(404, f"No active bot found for {platform}/{native}.")
        if meeting.status != S.stopping:
            try:
                meeting, _ = await self.transition(meeting.id, S.stopping, source="user")
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
            await self.handle_bot_gone(handle, info.exit_code if info else None)
        else:
            with contextlib.suppress(IllegalTransition):
                await self.transition(
                    meeting_id, S.completed, reason=CompletionReason.stopped, source="bot_manager"
                )

    # --- PUT /bots/{platform}/{native}/config -------------------------------------------------

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

    # --- lifecycle ----------------------------------------------------------------------------

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
        return await self.transition(
            meeting_id, status, reason=reason, details=details, participants=participants, source="bot"
        )

    async def transition(
        self,
        meeting_id: int,
        new_status: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        participants: list[str] | None = None,
        source: str,
    ) -> tuple[Meeting, bool]:
        """Move one meeting (row-locked) and announce it; returns (meeting, changed).

        Raises ``IllegalTransition`` (409) for moves the table forbids; repeating
        the current status is a harmless no-op so retried callbacks are safe.
        """
        new = MeetingStatus(new_status)
        async with self.db.sessionmaker() as session, session.begin():
            meeting = await session.get(Meeting, meeting_id, with_for_update=True, populate_existing=True)
            if meeting is None:
                raise ServiceError(404, f"Meeting {meeting_id} not found.")
            old = meeting.status
            changed = check_transition(old, new)
            data = dict(meeting.data or {})
            if participants:
                data["participants"] = merge_unique(data.get("participants"), participants)
            if not changed:
                if participants:
                    meeting.data = data
                return meeting, False
            now = datetime.now(UTC)
            if is_terminal(new):
                reason = reason or self._default_reason(old, new)
            entry: dict[str, Any] = {
                "from": old,
                "to": new.value,
                "timestamp": now.isoformat(),
                "source": source,
            }
            if reason:
                entry["reason"] = str(reason)
            data["status_transition"] = [*(data.get("status_transition") or []), entry]
            if new == S.active and meeting.start_time is None:
                meeting.start_time = now
            if is_terminal(new):
                meeting.end_time = now
                data["completion_reason"] = str(reason)
                if new == S.failed:
                    data["error_details"] = details or {"message": f"bot failed ({reason})"}
                elif details:
                    data["completion_details"] = details
                speakers, languages = await transcript_speakers_and_languages(session, self.redis, meeting_id)
                data["participants"] = merge_unique(data.get("participants"), speakers)
                data["languages"] = merge_unique(data.get("languages"), languages)
            meeting.status = new.value
            meeting.data = data
            await session.flush()
            await session.refresh(meeting)
        log.info(
            "meeting %s: %s -> %s%s (%s)",
            meeting_id,
            old,
            new.value,
            f" [{reason}]" if reason else "",
            source,
        )
        await self._announce(meeting, str(reason) if reason else None)
        return meeting, True

    @staticmethod
    def _default_reason(old: str, new: MeetingStatus) -> CompletionReason:
        if new == S.completed:
            return CompletionReason.stopped
        if old in (S.requested, S.joining, S.awaiting_admission):
            return CompletionReason.join_error
        return CompletionReason.bot_crashed

    async def _announce(self, meeting: Meeting, reason: str | None) -> None:
        """Live event + webhook; failures here are logged, never raised into the caller."""
        body = meeting_response(meeting, self.settings).model_dump(mode="json")
        try:
            await publish_event(
                self.redis,
                "meeting.status",
                meeting.id,
                meeting.platform,
                meeting.platform_specific_id,
                {"status": meeting.status, "reason": reason, "meeting": body},
            )
        except RedisError:
            log.warning("could not publish status event of meeting %s", meeting.id)
        try:
            async with self.db.sessionmaker() as session:
                url = (
                    await session.execute(
                        select(User.data["webhook_url"].astext).where(User.id == meeting.user_id)
                    )
                ).scalar_one_or_none()
            if url:
                event = "meeting.completed" if is_terminal(meeting.status) else "meeting.status"
                await self.webhooks.enqueue(url, event, body)
        except Exception:
            log.warning("could not queue the webhook of meeting %s", meeting.id, exc_info=True)

    # --- bots that went away ----------------------------------------------------------------

    async def handle_bot_gone(self, handle: str, exit_code: int | None) -> None:
        """A bot process/container/pod is gone: settle its meeting if the bot did not."""
        async with self.db.sessionmaker() as session:
            meeting = (
                await session.execute(
                    select(Meeting).where(
                        Meeting.bot_container_id == handle, Meeting.status.in_(ACTIVE_STATUSES)
                    )
                )
            ).scalar_one_or_none()
        if meeting is not None:
            try:
                if meeting.status == S.stopping:
                    await self.transition(
                        meeting.id, S.completed, reason=CompletionReason.stopped, source="orchestrator"
                    )
                else:
                    await self.transition(
                        meeting.id,
                        S.failed,
                        reason=CompletionReason.bot_crashed,
                        details={
                            "message": "the bot exited without reporting a final status",
                            "exit_code": exit_code,
                        },
                        source="orchestrator",
                    )
            except IllegalTransition:
                pass  # the bot's own final report won the race
        await self.orchestrator.stop(handle, timeout_s=1.0)

    async def reconcile_once(self) -> None:
        """Compare the database's active meetings with what the orchestrator runs."""
        async with self.db.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(Meeting.id, Meeting.status, Meeting.bot_container_id, Meeting.created_at).where(
                        Meeting.status.in_(ACTIVE_STATUSES)
                    )
                )
            ).all()
        grace_cutoff = datetime.now(UTC) - timedelta(seconds=self.settings.bot_start_grace_s)
        for meeting_id, status, handle, created_at in rows:
            if handle is None:
                if status == S.requested and created_at < grace_cutoff:
                    with contextlib.suppress(IllegalTransition):
                        await self.transition(
                            meeting_id,
                            S.failed,
                            reason=CompletionReason.join_error,
                            details={"error": "bot_start_failed", "message": "no bot was started"},
                            source="reconciler",
                        )
                continue
            info = await self.orchestrator.status(handle)
            if info is None or info.state == "exited":
                await self.handle_bot_gone(handle, info.exit_code if info else None)
        # Bots whose meeting has already ended (or vanished) are stopped.
        active_ids = {r[0] for r in rows}
        for info in await self.orchestrator.list():
            if info.state != "running" or info.meeting_id is None or info.meeting_id in active_ids:
                continue
            async with self.db.sessionmaker() as session:
                status = (
                    await session.execute(select(Meeting.status).where(Meeting.id == info.meeting_id))
                ).scalar_one_or_none()
            if status is None or is_terminal(status):
                log.warning("stopping orphan bot %s (meeting %s is %s)", info.handle, info.meeting_id, status)
                await self.orchestrator.stop(info.handle, timeout_s=self.settings.bot_stop_timeout_s)

    async def reconcile_forever(self) -> None:
        """The watcher: catches bots that died without a word, until ``close()``."""
        while not self._stopping.is_set():
            try:
                await self.reconcile_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.reconcile_interval_s)

    async def shutdown_bots(self) -> None:
        """Child-process bots die with us: stop them and record why, so no meeting stays 'active'.

        Container and pod bots are left running; the next manager (or another replica)
        reconciles them.
        """
        if not self.orchestrator.bots_die_with_manager:
            await self.orchestrator.close()
            return
        bots = await self.orchestrator.list()
        await self.orchestrator.close()
        for info in bots:
            async with self.db.sessionmaker() as session:
                meeting = (
                    await session.execute(
                        select(Meeting.id, Meeting.status).where(
                            Meeting.bot_container_id == info.handle, Meeting.status.in_(ACTIVE_STATUSES)
                        )
                    )
                ).first()
            if meeting is None:
                continue
            # The transcript so far is intact, so this is a normal stop, attributed to the shutdown.
            with contextlib.suppress(Exception):
                await self.transition(
                    meeting.id,
                    S.completed,
                    reason=CompletionReason.stopped,
                    details={"message": "bot-manager shut down and stopped the bot"},
                    source="shutdown",
                )

    # --- GET /bots/status ---------------------------------------------------------------------

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
