"""Meeting platforms: native-id formats and the join URLs built from them.

Shared by the gateway (validation), the bot-manager (URL building) and the
collector (path parameters), so one regex decides what a valid id is. Digits are
ASCII ``[0-9]`` only: ``\\d`` would also accept e.g. Arabic-Indic digits, which no
platform issues and which would make two spellings of one meeting.
"""

from __future__ import annotations

import enum
import re
from urllib.parse import urlencode, urlsplit, urlunsplit


class Platform(enum.StrEnum):
    google_meet = "google_meet"
    zoom = "zoom"
    teams = "teams"


_FORMATS: dict[Platform, tuple[re.Pattern[str], str]] = {
    Platform.google_meet: (
        re.compile(r"^[a-z]{3}-[a-z]{4}-[a-z]{3}$"),
        "a Google Meet code like 'abc-defg-hij' (lowercase letters, 3-4-3)",
    ),
    Platform.zoom: (re.compile(r"^[0-9]{9,11}$"), "a Zoom meeting number of 9 to 11 digits"),
    Platform.teams: (re.compile(r"^[0-9]{10,15}$"), "a Teams meeting id of 10 to 15 digits"),
}

_PASSCODE = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")


def native_id_problem(platform: Platform | str, native_id: str) -> str | None:
    """None when valid, else a sentence saying what the format is."""
    try:
        plat = Platform(platform)
    except ValueError:
        return f"unknown platform {platform!r}; expected one of {', '.join(p.value for p in Platform)}"
    pattern, description = _FORMATS[plat]
    if not pattern.fullmatch(native_id or ""):
        return f"invalid native_meeting_id for {plat.value}: expected {description}"
    return None


def passcode_problem(passcode: str | None) -> str | None:
    if passcode is None or _PASSCODE.fullmatch(passcode):
        return None
    return "invalid passcode: 1 to 128 letters, digits, '.', '_' or '-'"


def meeting_url(
    platform: Platform | str, native_id: str, passcode: str | None = None, base_url: str | None = None
) -> str:
    """The join URL; ``base_url`` (MEETING_BASE_URL) swaps scheme and host, e.g. for the simulator."""
    plat = Platform(platform)
    if plat is Platform.google_meet:
        url = f"https://meet.google.com/{native_id}"
    elif plat is Platform.zoom:
        url = f"https://zoom.us/j/{native_id}" + (f"?{urlencode({'pwd': passcode})}" if passcode else "")
    else:
        url = f"https://teams.live.com/meet/{native_id}" + (
            f"?{urlencode({'p': passcode})}" if passcode else ""
        )
    if base_url:
        base = urlsplit(base_url)
        parts = urlsplit(url)
        prefix = base.path.rstrip("/")
        url = urlunsplit((base.scheme, base.netloc, prefix + parts.path, parts.query, ""))
    return url
