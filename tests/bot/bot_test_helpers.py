"""Shared helpers for the bot tests (kept out of conftest.py so test modules can import them)."""

from __future__ import annotations

from vexa.bot.settings import BotConfig
from vexa.testing.simulator import SimulatorServer

NATIVE_IDS = {"google_meet": "abc-defg-hij", "zoom": "1234567890", "teams": "1234567890123"}
PATHS = {"google_meet": "/{}", "zoom": "/j/{}?pwd=sim", "teams": "/meet/{}?p=sim"}
BOT_TOKEN = "vbt_bot-token-for-tests"  # the bot's one secret: callbacks and transcription


def bot_config(
    platform: str,
    sim: SimulatorServer,
    transcription_url: str,
    callback_url: str,
    *,
    redis_url: str | None = None,
    admission_timeout_s: float = 30,
    leave_when_alone_s: float = 60,
    max_duration_s: float = 120,
    native_id: str | None = None,
) -> BotConfig:
    native = native_id or NATIVE_IDS[platform]
    return BotConfig(
        meeting_id=42,
        platform=platform,
        native_meeting_id=native,
        meeting_url=sim.base_url + PATHS[platform].format(native),
        bot_name="Vexa Notetaker",
        language="en",
        task="transcribe",
        token=BOT_TOKEN,
        transcription_url=transcription_url,
        callback_url=callback_url,
        redis_url=redis_url,
        leave_when_alone_s=leave_when_alone_s,
        max_duration_s=max_duration_s,
        admission_timeout_s=admission_timeout_s,
    )
