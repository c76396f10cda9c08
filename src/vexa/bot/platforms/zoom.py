"""Zoom web client (join from the browser): selectors for join flow and meeting UI."""

from __future__ import annotations

from vexa.bot.platforms.base import MeetingAdapter, Selectors

ZOOM = Selectors(
    launcher_buttons=('a:has-text("Join from Your Browser")', 'a:has-text("Join from your browser")'),
    name_input="input#input-for-name",
    mute_mic=('button#preview-audio-control-button[aria-label="Mute"]',),
    camera_off=('button#preview-video-control-button[aria-label="Stop Video"]',),
    join_buttons=("button.preview-join-button", 'button:has-text("Join")'),
    waiting=(
        "text=the meeting host will let you in soon",
        "text=Host has joined. We've let them know you're here",
    ),
    admitted=("button.footer__leave-btn",),
    rejected=("text=removed you from the waiting room", "text=The host has denied"),
    removed=("text=You have been removed from this meeting",),
    ended=("text=This meeting has been ended by host", "text=You left the meeting"),
    not_found=("text=This meeting link is invalid", "text=Meeting does not exist"),
    leave_button="button.footer__leave-btn",
    leave_confirm="button.leave-meeting-options__btn",
    tile=".video-avatar__avatar",
    tile_id_attr="data-participant-id",
    tile_name=".video-avatar__avatar-name",
    speaking=".video-avatar__avatar--speaking",
)


class ZoomAdapter(MeetingAdapter):
    platform = "zoom"

    @property
    def selectors(self) -> Selectors:
        return ZOOM
