"""The small interface every way of running bots implements.

The manager only ever asks four things of an orchestrator: start a bot, stop
it, is it still there, and which bots exist. Everything engine-specific (child
processes, Docker containers, Kubernetes pods) stays behind these calls, so
the lifecycle logic is the same for all three.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

# Labels (Docker) / labels (Kubernetes) / metadata (process) on every bot.
LABEL_MANAGED = "vexa.bot"
LABEL_USER = "vexa.user_id"
LABEL_MEETING = "vexa.meeting_id"
LABEL_PLATFORM = "vexa.platform"
LABEL_NATIVE_ID = "vexa.native_meeting_id"


@dataclass(frozen=True, slots=True)
class BotSpec:
    """Everything needed to start one bot; ``bot_token`` is its secret (env ``BOT_TOKEN``, never logged)."""

    meeting_id: int
    user_id: int
    platform: str
    native_meeting_id: str
    bot_config_json: str
    bot_token: str = field(repr=False)

    @property
    def name(self) -> str:
        return f"vexa-bot-{self.meeting_id}"

    def labels(self) -> dict[str, str]:
        return {
            LABEL_MANAGED: "true",
            LABEL_USER: str(self.user_id),
            LABEL_MEETING: str(self.meeting_id),
            LABEL_PLATFORM: self.platform,
            LABEL_NATIVE_ID: self.native_meeting_id,
        }


BotState = Literal["running", "exited"]


@dataclass(frozen=True, slots=True)
class BotInfo:
    """One bot as the engine sees it."""

    handle: str
    state: BotState
    labels: dict[str, str]
    name: str | None = None
    created_at: str | None = None
    exit_code: int | None = None

    @property
    def meeting_id(self) -> int | None:
        raw = self.labels.get(LABEL_MEETING)
        return int(raw) if raw and raw.isdigit() else None

    @property
    def user_id(self) -> int | None:
        raw = self.labels.get(LABEL_USER)
        return int(raw) if raw and raw.isdigit() else None


ExitCallback = Callable[[str, int | None], Awaitable[None]]


class BotStartError(RuntimeError):
    """The engine refused or failed to start a bot (image missing, no engine, quota...)."""


class Orchestrator(abc.ABC):
    """start / stop / status / list, plus lifecycle hooks for the service."""

    kind: str = "abstract"
    # True when bots cannot outlive this manager process (child processes): shutdown then
    # stops them and settles their meetings. Containers and pods keep running across restarts.
    bots_die_with_manager: bool = False

    def __init__(self) -> None:
        self.on_exit: ExitCallback | None = None

    @abc.abstractmethod
    async def start(self, spec: BotSpec) -> str:
        """Start one bot; returns its handle (stored as ``meetings.bot_container_id``)."""

    @abc.abstractmethod
    async def stop(self, handle: str, timeout_s: float = 10.0) -> None:
        """Stop (gracefully, then by force) and forget a bot; a no-op for an unknown handle."""

    @abc.abstractmethod
    async def status(self, handle: str) -> BotInfo | None:
        """The bot's state, or None when the engine no longer knows it (gone)."""

    @abc.abstractmethod
    async def list(self) -> list[BotInfo]:
        """Every bot this manager's engine knows about (running or exited, not yet removed)."""

    async def adopt(self) -> list[BotInfo]:
        """At startup: take over bots an earlier manager left running; returns them.

        Docker and Kubernetes need nothing here: ``list``/``status`` ask the engine,
        which knows every bot by label whichever manager started it.
        """
        return [b for b in await self.list() if b.state == "running"]

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Called once at shutdown."""
