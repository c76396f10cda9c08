"""Redis keys more than one service reads, named in one place."""

from __future__ import annotations


def segments_key(meeting_id: int) -> str:
    """The collector's hash of a meeting's mutable segments (the bot-manager reads it at meeting end)."""
    return f"meeting:{meeting_id}:segments"
