"""Platform adapters: one module per meeting platform, one interface (``MeetingAdapter``)."""

from __future__ import annotations

from vexa.bot.platforms.base import JoinFailed, MeetingAdapter, Selectors
from vexa.bot.platforms.google_meet import GoogleMeetAdapter
from vexa.bot.platforms.teams import TeamsAdapter
from vexa.bot.platforms.zoom import ZoomAdapter

ADAPTERS: dict[str, type[MeetingAdapter]] = {
    "google_meet": GoogleMeetAdapter,
    "teams": TeamsAdapter,
    "zoom": ZoomAdapter,
}

__all__ = ["ADAPTERS", "JoinFailed", "MeetingAdapter", "Selectors"]
