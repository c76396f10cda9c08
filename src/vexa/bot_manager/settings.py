"""Bot-manager settings: upstream Vexa's env-var names where they exist.

Everything a bot needs to reach the rest of the stack (transcription URL, our
callback URL, Redis) is decided here, because the bot itself only learns what
the manager puts in its ``BOT_CONFIG``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field

from vexa.config import DataSettings, vexa_home
from vexa.recordings.settings import RecordingStorageSettings
from vexa.webhooks.settings import WebhookSettings


def default_bot_command() -> list[str]:
    """The real bot, run by the same interpreter as the manager."""
    return [sys.executable, "-m", "vexa", "bot"]


class BotManagerSettings(DataSettings, WebhookSettings, RecordingStorageSettings):
    """One class for the whole service; tests build it with explicit values."""

    port: int = Field(8080, alias="BOT_MANAGER_PORT")
    orchestrator: Literal["process", "docker", "kubernetes"] = Field("process", alias="ORCHESTRATOR")
    bot_command: list[str] = Field(
        default_factory=default_bot_command,
        alias="BOT_COMMAND",
        description="Process orchestrator only: argv of one bot (JSON list in the environment).",
    )
    bot_image: str = Field(
        "vexa-bot:latest", validation_alias=AliasChoices("BOT_IMAGE", "BOT_IMAGE_NAME", "bot_image")
    )
    docker_network: str | None = Field(None, alias="DOCKER_NETWORK")
    k8s_namespace: str = Field("default", alias="K8S_NAMESPACE")
    k8s_storage_credentials_from: str | None = Field(
        None,
        alias="K8S_STORAGE_CREDENTIALS_FROM",
        description="Kubernetes only: the Secret bot pods read S3_ACCESS_KEY/S3_SECRET_KEY from, "
        "instead of getting them as plain values in their pod spec.",
    )
    bot_memory_limit: str = Field("1g", alias="BOT_MEMORY_LIMIT", description="Docker mem_limit / k8s limit.")
    bot_cpu_limit: float = Field(1.0, alias="BOT_CPU_LIMIT", description="CPUs per bot (docker/k8s).")
    bot_cpu_request: float = Field(0.25, alias="BOT_CPU_REQUEST", description="k8s CPU request.")
    bot_memory_request: str = Field("512Mi", alias="BOT_MEMORY_REQUEST", description="k8s memory request.")

    whisper_live_url: str = Field("ws://127.0.0.1:9090/ws", alias="WHISPER_LIVE_URL")
    meeting_base_url: str | None = Field(None, alias="MEETING_BASE_URL")
    callback_url: str | None = Field(
        None,
        alias="BOT_MANAGER_CALLBACK_URL",
        description="How bots reach us; default http://127.0.0.1:<port>.",
    )
    bot_redis_url: str | None = Field(
        None, alias="BOT_REDIS_URL", description="Redis URL as seen from a bot, if it differs from ours."
    )
    default_bot_name: str = Field("Vexa Bot", alias="BOT_NAME")

    bot_stop_timeout_s: float = Field(30.0, alias="BOT_STOP_TIMEOUT_S")
    bot_leave_when_alone_s: float = Field(60.0, alias="BOT_LEAVE_WHEN_ALONE_S")
    bot_max_duration_s: float = Field(4 * 3600.0, alias="BOT_MAX_DURATION_S")
    bot_admission_timeout_s: float = Field(300.0, alias="BOT_ADMISSION_TIMEOUT_S")
    bot_start_grace_s: float = Field(
        120.0,
        alias="BOT_START_GRACE_S",
        description="A meeting left 'requested' with no bot this long failed.",
    )

    bot_token_grace_s: float = Field(
        3600.0,
        gt=0,
        alias="BOT_TOKEN_GRACE_S",
        description="After a meeting ends its bot token opens no session but still authorises "
        "segments already sent, this long (a collector backlog).",
    )
    recording_enabled_default: bool = Field(
        True,
        alias="RECORDING_ENABLED",
        description="Record meetings unless the request or the user's data.recording_enabled says no.",
    )

    reconcile_interval_s: float = Field(10.0, gt=0, alias="RECONCILE_INTERVAL_S")
    bot_log_dir: Path | None = Field(None, alias="BOT_LOG_DIR")

    def bot_token_ttl_s(self) -> float:
        """A bot token outlives its bot's longest possible life by a margin, and no more."""
        return self.bot_start_grace_s + self.bot_admission_timeout_s + self.bot_max_duration_s + 600

    def resolved_callback_url(self) -> str:
        return (self.callback_url or f"http://127.0.0.1:{self.port}").rstrip("/")

    def resolved_bot_redis_url(self) -> str:
        return self.bot_redis_url or self.redis_url()

    def resolved_log_dir(self) -> Path:
        return self.bot_log_dir or (vexa_home() / "logs" / "bots")
