"""What a bot is told: the ``BOT_CONFIG`` JSON (no secrets) and how its token is checked.

This is the one place that decides the bot's contract (docs/CONTRACTS.md
"bot-manager <-> bot"), so the bot's own ``BotConfig`` model and every
orchestrator agree on it. The bot's one secret is its meeting token
(``vexa.bot_tokens``), passed apart from the config (env ``BOT_TOKEN``, a Secret
on Kubernetes); only its SHA-256 is stored, so reading the database or Redis
does not let anyone impersonate a bot.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from vexa.bot_manager.settings import BotManagerSettings
from vexa.bot_tokens import hash_bot_token


def callback_token_matches(presented: str | None, stored_hash: str | None) -> bool:
    """Constant-time check of a presented ``X-Bot-Token`` against the stored hash."""
    if not presented or not stored_hash or len(presented) > 512:
        return False
    return hmac.compare_digest(hash_bot_token(presented), stored_hash)


def build_bot_config(
    settings: BotManagerSettings,
    *,
    meeting_id: int,
    platform: str,
    native_meeting_id: str,
    meeting_url: str,
    bot_name: str | None = None,
    language: str | None = None,
    task: str | None = None,
    custom_vocabulary: list[str] | None = None,
    recording_prefix: str | None = None,
) -> dict[str, Any]:
    """The exact ``BOT_CONFIG`` object: no secret in it (the token goes in ``BOT_TOKEN``)."""
    return {
        "meeting_id": meeting_id,
        "platform": platform,
        "native_meeting_id": native_meeting_id,
        "meeting_url": meeting_url,
        "bot_name": bot_name or settings.default_bot_name,
        "language": language,
        "task": task or "transcribe",
        "custom_vocabulary": custom_vocabulary or [],
        "transcription_url": settings.whisper_live_url,
        "callback_url": settings.resolved_callback_url(),
        "redis_url": settings.resolved_bot_redis_url(),
        "leave_when_alone_s": settings.bot_leave_when_alone_s,
        "max_duration_s": settings.bot_max_duration_s,
        "admission_timeout_s": settings.bot_admission_timeout_s,
        "recording_enabled": recording_prefix is not None,
        "recording_prefix": recording_prefix,
    }


def bot_config_json(config: dict[str, Any]) -> str:
    return json.dumps(config, separators=(",", ":"))
