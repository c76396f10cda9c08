"""The meeting lifecycle: which status may follow which, and the words for why it ended.

Kept apart from the handlers so there is exactly one table to read (and test)
when asking "can a meeting go from X to Y?". Bots only move forward; terminal
statuses never change again.
"""

from __future__ import annotations

import enum

from vexa.db.models import ACTIVE_STATUSES, TERMINAL_STATUSES, MeetingStatus

S = MeetingStatus


class CompletionReason(enum.StrEnum):
    """Why a meeting reached ``completed`` or ``failed`` (stored in ``data["completion_reason"]``)."""

    stopped = "stopped"
    awaiting_admission_timeout = "awaiting_admission_timeout"
    awaiting_admission_rejected = "awaiting_admission_rejected"
    left_alone = "left_alone"
    evicted = "evicted"
    meeting_ended = "meeting_ended"
    max_duration = "max_duration"
    meeting_not_found = "meeting_not_found"
    bot_crashed = "bot_crashed"
    join_error = "join_error"


TRANSITIONS: dict[MeetingStatus, frozenset[MeetingStatus]] = {
    S.requested: frozenset({S.joining, S.awaiting_admission, S.active, S.stopping, S.completed, S.failed}),
    S.joining: frozenset({S.awaiting_admission, S.active, S.stopping, S.completed, S.failed}),
    S.awaiting_admission: frozenset({S.active, S.stopping, S.completed, S.failed}),
    S.active: frozenset({S.stopping, S.completed, S.failed}),
    S.stopping: frozenset({S.completed, S.failed}),
    S.completed: frozenset(),
    S.failed: frozenset(),
}

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "CompletionReason",
    "IllegalTransition",
    "check_transition",
    "is_terminal",
]


class IllegalTransition(Exception):
    """Raised for a move the table does not allow; handlers answer 409."""

    def __init__(self, current: str, new: str) -> None:
        allowed = ", ".join(sorted(TRANSITIONS.get(MeetingStatus(current), ()))) or "none (terminal)"
        super().__init__(f"illegal status transition {current} -> {new}; allowed from {current}: {allowed}")
        self.current = current
        self.new = new


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES


def check_transition(current: str, new: str) -> bool:
    """True when the move changes something, False for a repeat (an idempotent retry).

    Raises ``IllegalTransition`` for anything the table forbids, including any
    move out of a terminal status.
    """
    cur, nxt = MeetingStatus(current), MeetingStatus(new)
    if cur == nxt:
        return False
    if nxt not in TRANSITIONS[cur]:
        raise IllegalTransition(cur, nxt)
    return True
