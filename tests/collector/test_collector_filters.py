"""The hallucination filter tries its patterns as one alternation: same verdicts as one by one."""

from __future__ import annotations

from vexa.collector.filters import DEFAULT_HALLUCINATION_PATTERNS, TranscriptionFilter

TEXTS = [
    "[Music]", "(applause)!", "♪ ♪", "...", "Subtitles by the Amara.org community", "um uh",
    "Thanks.", "We ship on Friday.", "a the", "x", "Music to my ears, really.", "",
]  # fmt: skip


def test_the_alternation_names_the_same_pattern_as_trying_each() -> None:
    joined = TranscriptionFilter()
    assert joined._any is not None
    one_by_one = TranscriptionFilter()
    one_by_one._any = None  # the fallback: each pattern in turn
    verdicts = [joined.keep(t) for t in TEXTS]
    assert verdicts == [one_by_one.keep(t) for t in TEXTS]
    assert [ok for ok, _ in verdicts] == [False] * 6 + [True, True, False, False, True, False]


def test_patterns_with_backreferences_are_tried_one_by_one() -> None:
    """Joined, ``\\1`` would point at another pattern's group; such a set is never joined."""
    f = TranscriptionFilter(patterns=[*DEFAULT_HALLUCINATION_PATTERNS, r"(\w+) \1"])
    assert f._any is None
    assert f.keep("again again") == (False, "matches hallucination pattern '(\\\\w+) \\\\1'")
    assert f.keep("again and again") == (True, "")
