"""Google Meet: selectors for the web client's join flow and meeting UI."""

from __future__ import annotations

from vexa.bot.platforms.base import MeetingAdapter, Selectors

# Meet's speaking indicator is an obfuscated class on a descendant of the tile;
# these are the ones seen in the wild (update here when Meet changes them).
SPEAKING_CLASSES = ("Oaajhc", "HX2H7", "wEsLMd", "OgVli")

GOOGLE_MEET = Selectors(
    name_input='input[aria-label="Your name"]',
    mute_mic=(
        '[role="button"][aria-label="Turn off microphone"]',
        'button[aria-label="Turn off microphone"]',
    ),
    camera_off=('[role="button"][aria-label="Turn off camera"]', 'button[aria-label="Turn off camera"]'),
    join_buttons=('button:has-text("Ask to join")', 'button:has-text("Join now")'),
    waiting=("text=Asking to be let in", "text=You'll join the call when someone lets you in"),
    admitted=('button[aria-label="Leave call"]',),
    rejected=("text=You can't join this call", "text=denied your request to join"),
    removed=("text=You've been removed from the meeting",),
    ended=("text=The call has ended", "text=You left the meeting"),
    not_found=("text=Check your meeting code", "text=Invalid video call name"),
    leave_button='button[aria-label="Leave call"]',
    tile="[data-participant-id]",
    tile_id_attr="data-participant-id",
    tile_name="span.notranslate",
    speaking=", ".join(f".{c}" for c in SPEAKING_CLASSES),
)


class GoogleMeetAdapter(MeetingAdapter):
    platform = "google_meet"

    @property
    def selectors(self) -> Selectors:
        return GOOGLE_MEET
