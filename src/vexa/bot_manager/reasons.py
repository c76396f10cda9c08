"""Why a meeting ended, in words a person can act on, and safe to show to its owner.

The bot reports a message with its final status (``details.message``, e.g.
"cannot open the meeting page: net::ERR_NAME_NOT_RESOLVED"); the bot-manager
stores it as ``data.error_details`` (upstream's field: a string). Bot messages
are not trusted to be clean: only the first line is kept (no stack traces),
URL credentials and query strings, ``key=value`` secrets and long token-like
strings are replaced by ``[redacted]``, and the text is capped.
"""

from __future__ import annotations

import re
from typing import Any

from vexa.bot_manager.lifecycle import CompletionReason as R

MAX_CHARS = 300
_DEFAULTS: dict[str, str] = {
    R.join_error: "the bot could not join the meeting",
    R.meeting_not_found: "the meeting was not found",
    R.awaiting_admission_timeout: "the bot was not admitted before the admission timeout",
    R.awaiting_admission_rejected: "the host did not let the bot in",
    R.bot_crashed: "the bot stopped unexpectedly",
    R.evicted: "the bot was removed from the meeting",
    R.left_alone: "everyone else left the meeting",
    R.meeting_ended: "the meeting ended",
    R.max_duration: "the bot reached its maximum meeting duration",
}
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_URL_QUERY = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s?#]+)\?[^\s#]*")
_SECRET_PAIR = re.compile(
    r"(?i)\b((?:api[_-]?key|token|secret|password|passwd|pwd|signature|auth(?:orization)?|bearer)"
    r"[\"']?\s*[:=]\s*|bearer\s+)[\"']?[^\s\"',;&]+"
)
_TOKEN_LIKE = re.compile(r"\b[A-Za-z0-9_\-+/]{32,}={0,2}")


def clean_message(text: Any) -> str | None:
    """One safe line, or None when nothing useful is left."""
    if not isinstance(text, str):
        return None
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines or lines[0].startswith("Traceback"):
        return None
    line = _URL_USERINFO.sub(r"\1[redacted]@", lines[0])
    line = _URL_QUERY.sub(r"\1?[redacted]", line)
    line = _SECRET_PAIR.sub(lambda m: m.group(1) + "[redacted]", line)
    line = _TOKEN_LIKE.sub("[redacted]", line)
    return line[:MAX_CHARS] or None


def error_details(status: str, reason: str | None, details: dict[str, Any] | None) -> str | None:
    """``data.error_details`` for a terminal status: always for ``failed``, for ``completed`` only
    when it ended for a reason other than a stop request."""
    message = clean_message((details or {}).get("message"))
    if status == "failed":
        return message or _DEFAULTS.get(str(reason), f"the bot failed ({reason})")
    if reason and reason != R.stopped:
        return message or _DEFAULTS.get(str(reason))
    return None


def safe_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """The report's other fields for ``data.completion_details``: scalars only, strings cleaned."""
    out: dict[str, Any] = {}
    for key, value in (details or {}).items():
        if key == "message" or not isinstance(key, str) or len(out) >= 20:
            continue
        if isinstance(value, bool | int | float) or value is None:
            out[key[:64]] = value
        elif isinstance(value, str) and (cleaned := clean_message(value)):
            out[key[:64]] = cleaned
    return out
