"""Watching bots from the outside: exits, silent deaths, orphans, and shutdown.

The bots report their own status; this is for when they cannot. A bot that is
gone while its meeting is active settles the meeting (``handle_bot_gone``); a
periodic pass compares the database with what the orchestrator runs; at
shutdown, bots that die with the manager (child processes) are stopped and their
meetings completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from vexa.bot_manager.lifecycle import ACTIVE_STATUSES, CompletionReason, IllegalTransition, is_terminal
from vexa.bot_manager.orchestrators.base import Orchestrator
from vexa.bot_manager.settings import BotManagerSettings
from vexa.bot_manager.transitions import MeetingTransitions
from vexa.db import Database
from vexa.db.models import Meeting, MeetingStatus

log = logging.getLogger(__name__)

S = MeetingStatus


class Reconciler:
    def __init__(
        self,
        settings: BotManagerSettings,
        db: Database,
        orchestrator: Orchestrator,
        transitions: MeetingTransitions,
    ) -> None:
        self.settings = settings
        self.db = db
        self.orchestrator = orchestrator
        self.transitions = transitions
        # A flag as well as cancel(): on Python 3.11 a cancel that lands while a driver's
        # wait_for is completing can be swallowed, and the loop must still end at shutdown.
        self._stopping = asyncio.Event()
        orchestrator.on_exit = self.handle_bot_gone

    def stop(self) -> None:
        self._stopping.set()

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
                    await self.transitions.transition(
                        meeting.id, S.completed, reason=CompletionReason.stopped, source="orchestrator"
                    )
                else:
                    await self.transitions.transition(
                        meeting.id,
                        S.failed,
                        reason=CompletionReason.bot_crashed,
                        details={
                            "message": f"the bot process exited (code {exit_code}) without a final status",
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
                        await self.transitions.transition(
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

    async def run(self) -> None:
        """The watcher: catches bots that died without a word, until ``stop()``."""
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
                await self.transitions.transition(
                    meeting.id,
                    S.completed,
                    reason=CompletionReason.stopped,
                    details={"message": "bot-manager shut down and stopped the bot"},
                    source="shutdown",
                )
