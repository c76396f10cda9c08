"""Microsoft Teams (web, "continue on this browser"): selectors for join flow and meeting UI."""

from __future__ import annotations

from vexa.bot.platforms.base import MeetingAdapter, Selectors

TEAMS = Selectors(
    launcher_buttons=('button[data-tid="joinOnWeb"]', 'button:has-text("Continue on this browser")'),
    name_input='input[data-tid="prejoin-display-name-input"]',
    mute_mic=('[data-tid="toggle-mute"][aria-checked="true"]',),
    camera_off=('[data-tid="toggle-video"][aria-checked="true"]',),
    join_buttons=('button[data-tid="prejoin-join-button"]', 'button:has-text("Join now")'),
    waiting=("text=Someone will let you in shortly", '[data-tid="lobby-screen"]'),
    admitted=("button#hangup-button", '[data-tid="hangup-main-btn"]'),
    rejected=("text=you were denied access to the meeting",),
    removed=("text=You've been removed from this meeting", "text=removed you from the meeting"),
    ended=("text=The meeting has ended", "text=You left the meeting"),
    not_found=("text=We couldn't find this meeting", "text=This meeting link is invalid"),
    leave_button='button#hangup-button, [data-tid="hangup-main-btn"]',
    tile='[data-tid="participant-tile"]',
    tile_id_attr="data-participant-id",
    tile_name='[data-tid="participant-name"]',
    speaking='[data-tid="voice-level-stream-outline"].vdi-frame-occlusion',
)


class TeamsAdapter(MeetingAdapter):
    platform = "teams"

    @property
    def selectors(self) -> Selectors:
        return TEAMS
