"""The webhook event vocabulary, who gets what by default, and the envelope every delivery carries.

Names and shapes are upstream Vexa's (its ``webhook.v1`` contract), so a receiver
written for upstream parses ours unchanged: the body is
``{event_id, event_type, api_version, created_at, data}``. Without a
``webhook_events`` choice a user gets only ``meeting.completed`` (upstream's
default); every other event is opt-in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

API_VERSION = "2026-03-01"

MEETING_COMPLETED = "meeting.completed"
MEETING_STARTED = "meeting.started"
MEETING_STATUS_CHANGE = "meeting.status_change"
BOT_FAILED = "bot.failed"
TRANSCRIPTION_READY = "transcription.ready"
RECORDING_READY = "recording.ready"
PING = "webhook.ping"

EVENT_TYPES: frozenset[str] = frozenset(
    {
        MEETING_COMPLETED,
        MEETING_STARTED,
        MEETING_STATUS_CHANGE,
        BOT_FAILED,
        TRANSCRIPTION_READY,
        RECORDING_READY,
    }
)
DEFAULT_EVENTS: frozenset[str] = frozenset({MEETING_COMPLETED})
# Other spellings accepted on input and mapped to upstream's names.
ALIASES: Mapping[str, str] = {
    "transcript.ready": TRANSCRIPTION_READY,
    "meeting.status": MEETING_STATUS_CHANGE,
}


class UnknownEvent(ValueError):
    """An event name outside the vocabulary (the message lists the valid ones)."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"unknown webhook event {name!r}; expected some of: {', '.join(sorted(EVENT_TYPES))}"
        )


def canonical(name: str) -> str:
    """Upstream's name for ``name``; raises ``UnknownEvent``."""
    name = ALIASES.get(name, name)
    if name not in EVENT_TYPES:
        raise UnknownEvent(name)
    return name


def normalize_choice(choice: Mapping[str, bool] | Iterable[str]) -> dict[str, bool]:
    """Upstream's ``{event: enabled}`` map from either that map or a plain list of names."""
    pairs = choice.items() if isinstance(choice, Mapping) else ((name, True) for name in choice)
    return {canonical(str(name)): bool(on) for name, on in pairs}


def is_enabled(choice: Mapping[str, Any] | None, event: str) -> bool:
    """An explicit flag wins; otherwise the default set decides (upstream's rule)."""
    if event == PING:
        return True
    if isinstance(choice, Mapping) and choice.get(event) is not None:
        return bool(choice[event])
    return event in DEFAULT_EVENTS


def enabled_events(choice: Mapping[str, Any] | None) -> list[str]:
    return sorted(e for e in EVENT_TYPES if is_enabled(choice, e))


def event_id(user_id: int, event: str, key: str) -> str:
    """The stable id of one logical event: every redelivery carries the same one (receivers de-duplicate).

    Derived from what makes the event unique (the user, its type and the emitter's ``key``,
    e.g. ``meeting:12:completed``), never minted per send.
    """
    digest = hashlib.sha256(f"{user_id}|{event}|{key}".encode()).hexdigest()
    return "evt_" + digest[:32]


def envelope(event: str, data: dict[str, Any], ident: str) -> dict[str, Any]:
    return {
        "event_id": ident,
        "event_type": event,
        "api_version": API_VERSION,
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "data": data,
    }
