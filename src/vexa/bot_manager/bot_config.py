"""What a bot is told: the ``BOT_CONFIG`` JSON and its per-meeting callback secret.

This is the one place that decides the bot's contract (docs/CONTRACTS.md
"bot-manager <-> bot"), so the bot's own ``BotConfig`` model and every
orchestrator agree on it. The callback token is random per meeting; only its
SHA-256 is stored, so reading the database does not let anyone impersonate a bot.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

from vexa.bot_manager.settings import BotManagerSettings


def new_callback_token() -> tuple[str, str]:
    """(plaintext for the bot, hash for the database)."""
    token = secrets.token_urlsafe(32)
    return token, hash_callback_token(token)


def hash_callback_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def callback_token_matches(presented: str | None, stored_hash: str | None) -> bool:
    """Constant-time check of a presented ``X-Bot-Token`` against the stored hash."""
    if not presented or not stored_hash or len(presented) > 512:
        return False
    return hmac.compare_digest(hash_callback_token(presented), stored_hash)


def build_bot_config(
    settings: BotManagerSettings,
    *,
    meeting_id: int,
    platform: str,
    native_meeting_id: str,
    meeting_url: str,
    user_token: str,
    callback_token: str,
    bot_name: str | None = None,
    language: str | None = None,
    task: str | None = None,
    custom_vocabulary: list[str] | None = None,
    recording_prefix: str | None = None,
) -> dict[str, Any]:
    """The exact ``BOT_CONFIG`` object; ``token`` is the caller's API key (never log this dict)."""
    return {
        "meeting_id": meeting_id,
        "platform": platform,
        "native_meeting_id": native_meeting_id,
        "meeting_url": meeting_url,
        "bot_name": bot_name or settings.default_bot_name,
        "language": language,
        "task": task or "transcribe",
        "custom_vocabulary": custom_vocabulary or [],
        "token": user_token,
        "transcription_url": settings.whisper_live_url,
        "callback_url": settings.resolved_callback_url(),
        "callback_token": callback_token,
        "redis_url": settings.resolved_bot_redis_url(),
        "leave_when_alone_s": settings.bot_leave_when_alone_s,
        "max_duration_s": settings.bot_max_duration_s,
        "admission_timeout_s": settings.bot_admission_timeout_s,
        "recording_enabled": recording_prefix is not None,
        "recording_prefix": recording_prefix,
    }


def bot_config_json(config: dict[str, Any]) -> str:
    return json.dumps(config, separators=(",", ":"))
