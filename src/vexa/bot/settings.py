"""The bot's configuration: the per-meeting ``BOT_CONFIG`` JSON plus process settings.

The bot-manager passes everything meeting-specific in one JSON env var and the
bot's meeting token in ``BOT_TOKEN`` (see docs/CONTRACTS.md "bot-manager ↔ bot");
machine-specific knobs (where Chromium lives, buffer sizes) are ordinary env vars
read by ``BotSettings``.
"""

from __future__ import annotations

import json
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


FULL_CHROMIUM = "/usr/lib/chromium/chromium"
HEADLESS_SHELL = "/usr/lib/chromium/chromium-headless-shell"


def default_chromium(*, headless: bool) -> str:
    """Debian's ``chromium-headless-shell`` for headless bots: the same engine without the desktop
    browser around it, about 30% less memory per bot (README "Sizing"); full Chromium otherwise."""
    return HEADLESS_SHELL if headless and os.path.exists(HEADLESS_SHELL) else FULL_CHROMIUM


class BotSettings(RecordingStorageSettings):
    """Process-level knobs, the same for every meeting on a machine (and where recordings are stored)."""

    chromium_path: str = Field(
        default_factory=lambda: default_chromium(headless=True),
        alias="BOT_CHROMIUM_PATH",
        description="Chromium binary; default: Debian's headless shell when installed, else chromium.",
    )
    headless: bool = Field(True, alias="BOT_HEADLESS")
    chromium_lean: bool = Field(
        True,
        alias="BOT_CHROMIUM_LEAN",
        description="Launch Chromium with the memory-saving flags (vexa.bot.browser.LEAN_ARGS).",
    )
    chromium_extra_args: list[str] = Field(
        default_factory=list,
        alias="BOT_CHROMIUM_EXTRA_ARGS",
        description='More Chromium flags, as a JSON list (e.g. ["--lang=de"]); appended last.',
    )
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
    audio_frame_ms: int = Field(
        250,
        ge=20,
        le=1000,
        alias="BOT_AUDIO_FRAME_MS",
        description="Audio per message from the page: larger frames cost less CPU, delay audio more.",
    )
    capture_path: Literal["track", "worklet"] = Field(
        "track",
        alias="BOT_CAPTURE_PATH",
        description="How the page taps remote audio: track (a MediaStreamTrackProcessor per track, read "
        "in a worker) or worklet (an AudioWorklet in a 16 kHz context; also used where a page lacks "
        "the processor or refuses the worker).",
    )
    capture_render_ms: int = Field(
        10,
        ge=10,
        le=200,
        alias="BOT_CAPTURE_RENDER_MS",
        description="With the worklet path, audio its context renders at a time: 100 cuts that path's "
        "CPU ~0.8x but puts more 10 ms gaps into the audio and dates a stream's start up to a "
        "render late (README, Figures, Bots round 5).",
    )
    audio_socket: bool = Field(
        True,
        alias="BOT_AUDIO_SOCKET",
        description="Audio from the page over a loopback WebSocket (false: through the page's binding, "
        "the slower route the page also falls back to when it cannot open the socket).",
    )
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
    speaker_lag_ms: float = Field(
        300.0,
        ge=0,
        le=5000,
        alias="BOT_SPEAKER_LAG_MS",
        description="How late the page's speaking indicator follows the audio; speaker events are "
        "dated this much earlier (the mixed path attributes words by them).",
    )

    @model_validator(mode="after")
    def _headed_needs_full_chromium(self) -> BotSettings:
        if "chromium_path" not in self.model_fields_set:
            self.chromium_path = default_chromium(headless=self.headless)
        return self
