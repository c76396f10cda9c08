"""The bot's configuration: the per-meeting ``BOT_CONFIG`` JSON plus process settings.

The bot-manager passes everything meeting-specific in one JSON env var and the
bot's meeting token in ``BOT_TOKEN`` (see docs/CONTRACTS.md "bot-manager ↔ bot");
machine-specific knobs (where Chromium lives, buffer sizes) are ordinary env vars
read by ``BotSettings``.
"""

from __future__ import annotations

import json
import os

from pydantic import BaseModel, ConfigDict, Field

from vexa.recordings.settings import RecordingStorageSettings


class BotConfig(BaseModel):
    """One meeting's context, from env ``BOT_CONFIG``."""

    model_config = ConfigDict(extra="ignore")

    meeting_id: int | str
    platform: str
    native_meeting_id: str
    meeting_url: str
    bot_name: str = "Vexa Bot"
    language: str | None = None
    task: str | None = "transcribe"
    custom_vocabulary: list[str] = Field(default_factory=list)
    token: str = Field(
        repr=False,
        description="The bot's own token, scoped to this meeting (env BOT_TOKEN); never the user's API key.",
    )
    transcription_url: str
    callback_url: str | None = None
    redis_url: str | None = None
    leave_when_alone_s: float = 60.0
    max_duration_s: float = 4 * 3600.0
    admission_timeout_s: float = 300.0
    # Where this meeting's recording goes (set by the bot-manager when recording is on).
    recording_enabled: bool = False
    recording_prefix: str | None = None

    @classmethod
    def from_env(cls) -> BotConfig:
        raw = os.environ.get("BOT_CONFIG")
        if not raw:
            raise SystemExit("BOT_CONFIG is not set: the bot needs its meeting context as JSON")
        data = json.loads(raw)
        # The secret travels apart from the config, so Kubernetes can mount it from a Secret.
        token = os.environ.get("BOT_TOKEN")
        if token:
            data["token"] = token
        if not data.get("token"):
            raise SystemExit("BOT_TOKEN is not set: the bot needs its meeting token")
        return cls.model_validate(data)


class BotSettings(RecordingStorageSettings):
    """Process-level knobs, the same for every meeting on a machine (and where recordings are stored)."""

    chromium_path: str = Field("/usr/lib/chromium/chromium", alias="BOT_CHROMIUM_PATH")
    headless: bool = Field(True, alias="BOT_HEADLESS")
    user_agent: str = Field(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        alias="BOT_USER_AGENT",
    )
    audio_buffer_s: float = Field(
        120.0,
        alias="BOT_AUDIO_BUFFER_S",
        description="Unsent audio kept per stream while transcription is down.",
    )
    reconnect_max_s: float = Field(10.0, alias="BOT_RECONNECT_MAX_S")
    per_participant: bool = Field(
        True, alias="BOT_PER_PARTICIPANT_AUDIO", description="One transcription session per participant."
    )
    recording_chunk_s: float = Field(
        10.0,
        gt=0,
        le=60,
        alias="RECORDING_CHUNK_S",
        description="Seconds per recording chunk: at most this much is lost if the bot is killed.",
    )
