"""Bot tokens: one short-lived secret per bot, good for its one meeting only.

The bot-manager issues it when it starts a bot (it is also the bot's callback
token), so the user's API key never reaches a bot: rotating or revoking that key
does not touch a running bot, and a leaked bot token reaches one meeting, not an
account. Redis holds ``vexa:bot_token:<sha256>`` -> the meeting it is for (never
the plaintext), with a TTL of the bot's longest life; the transcription service
checks it before giving a session a slot and the collector before storing a
segment. When the meeting ends the record is marked ``ended`` and kept for a grace
period, so the collector can still store a backlog while no new session opens.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

PREFIX = "vbt_"
KEY_PREFIX = "vexa:bot_token:"


@dataclass(frozen=True, slots=True)
class BotTokenClaims:
    """What a bot token is good for."""

    meeting_id: int
    user_id: int
    platform: str
    native_meeting_id: str
    token_hash: str
    ended: bool = False

    def covers(self, platform: str | None, native_meeting_id: str | None, meeting_db_id: int | None) -> bool:
        """Whether a session or message naming this meeting is the token's meeting."""
        if platform != self.platform or native_meeting_id != self.native_meeting_id:
            return False
        return meeting_db_id is None or meeting_db_id == self.meeting_id


def new_bot_token() -> tuple[str, str]:
    """(plaintext for the bot, SHA-256 for the database and Redis)."""
    token = PREFIX + secrets.token_urlsafe(32)
    return token, hash_bot_token(token)


def hash_bot_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def is_bot_token(token: str | None) -> bool:
    return token is not None and token.startswith(PREFIX)


def _key(token_hash: str) -> str:
    return KEY_PREFIX + token_hash


async def register(redis: Redis, claims: BotTokenClaims, ttl_s: float) -> None:
    record = asdict(claims)
    await redis.set(_key(claims.token_hash), json.dumps(record), ex=max(1, int(ttl_s)))


async def mark_ended(redis: Redis, token_hash: str, grace_s: float) -> None:
    """No new sessions from now on; segments already sent are still accepted for ``grace_s``."""
    key = _key(token_hash)
    raw = await redis.get(key)
    if raw is None:
        return
    record = json.loads(raw)
    record["ended"] = True
    await redis.set(key, json.dumps(record), ex=max(1, int(grace_s)))


async def lookup(redis: Redis, token: str | None) -> BotTokenClaims | None:
    """The token's claims, or None for a missing, malformed, unknown or expired token."""
    if token is None or not is_bot_token(token) or len(token) > 512:
        return None
    digest = hash_bot_token(token)
    raw = await redis.get(_key(digest))
    if raw is None:
        return None
    try:
        record = json.loads(raw)
        claims = BotTokenClaims(**record)
    except (ValueError, TypeError):
        return None
    if not hmac.compare_digest(claims.token_hash, digest):
        return None
    return claims
