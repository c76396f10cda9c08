"""Drop what is not speech before it reaches the permanent transcript.

Hallucinations are stopped where the evidence is: the transcription service
drops words Silero VAD did not hear and segments Whisper itself marks as
unlikely speech (no-speech probability with a low average log-probability).
So this filter no longer drops common phrases — "Thanks." or "Thank you." alone
is what people say at the end of a meeting, and dropping it lost real speech.
By default it only removes what is never spoken: caption credits ("Subtitles
by the Amara.org community"), sound markers ("[Music]", "♪"), punctuation, and
segments of fillers alone ("um uh"). Operators add their own rules in a
``filter_config.py`` (path in ``FILTER_CONFIG_PATH``) that may define:

- ``ADDITIONAL_FILTER_PATTERNS``: regexes (case-insensitive, ``fullmatch`` on the stripped text)
- ``STOPWORDS`` / ``CUSTOM_STOPWORDS``: words that do not count as real words
- ``MIN_CHARACTER_LENGTH``, ``MIN_REAL_WORDS``: ints replacing the defaults
- ``CUSTOM_FILTERS``: callables ``f(text) -> bool``; False drops the segment
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MIN_CHARACTER_LENGTH = 2
DEFAULT_MIN_REAL_WORDS = 1

# Each is matched against the whole (stripped) segment text, case-insensitively.
DEFAULT_HALLUCINATION_PATTERNS: tuple[str, ...] = (
    r"(subtitles|captions|subtitle) (by|from|provided by) .*",
    r".*amara\.org.*",
    r"\[?(music|applause|laughter|silence|blank_audio|inaudible)\]?[.!]*",
    r"\((music|applause|laughter|silence|inaudible)\)[.!]*",
    r"[♪♫\s.]+",
    r"[.…!?,\-\s]+",
)

DEFAULT_STOPWORDS: frozenset[str] = frozenset(
    {
        "um",
        "uh",
        "umm",
        "uhm",
        "hmm",
        "hm",
        "mm",
        "mhm",
        "ah",
        "eh",
        "er",
        "erm",
        "oh",
        "huh",
        "the",
        "a",
        "an",
    }
)

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=")


def _alternation(patterns: list[re.Pattern[str]]) -> re.Pattern[str] | None:
    """All patterns as one, so the common case (nothing matches) is one pass over the text;
    None when they cannot be joined: a backreference would point at another pattern's group
    once the groups are renumbered, and a group name may repeat."""
    if any(_BACKREFERENCE.search(p.pattern) for p in patterns):
        return None
    try:
        return re.compile("|".join(f"(?:{p.pattern})" for p in patterns) or "(?!)", re.IGNORECASE | re.DOTALL)
    except re.error:
        return None


class TranscriptionFilter:
    """``keep(text)`` -> (True, "") or (False, why)."""

    def __init__(
        self,
        *,
        min_character_length: int = DEFAULT_MIN_CHARACTER_LENGTH,
        min_real_words: int = DEFAULT_MIN_REAL_WORDS,
        patterns: Iterable[str] = DEFAULT_HALLUCINATION_PATTERNS,
        stopwords: Iterable[str] = DEFAULT_STOPWORDS,
        custom_filters: Iterable[Callable[[str], bool]] = (),
    ) -> None:
        self.min_character_length = min_character_length
        self.min_real_words = min_real_words
        self.patterns = [re.compile(p, re.IGNORECASE | re.DOTALL) for p in patterns]
        self._any = _alternation(self.patterns)
        self.stopwords = {w.lower() for w in stopwords}
        self.custom_filters = list(custom_filters)

    @classmethod
    def from_config(cls, path: str | Path | None) -> TranscriptionFilter:
        """Defaults extended by the user's filter_config.py; a broken file fails startup loudly."""
        if not path:
            return cls()
        path = Path(path)
        if not path.is_file():
            raise RuntimeError(f"FILTER_CONFIG_PATH={path} does not exist")
        spec = importlib.util.spec_from_file_location("vexa_user_filter_config", path)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"FILTER_CONFIG_PATH={path} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        extra_patterns = list(getattr(module, "ADDITIONAL_FILTER_PATTERNS", []))
        extra_stop = set(getattr(module, "STOPWORDS", [])) | set(getattr(module, "CUSTOM_STOPWORDS", []))
        custom = list(getattr(module, "CUSTOM_FILTERS", []))
        if not all(callable(f) for f in custom):
            raise RuntimeError(f"{path}: CUSTOM_FILTERS must be a list of callables text -> bool")
        built = cls(
            min_character_length=int(getattr(module, "MIN_CHARACTER_LENGTH", DEFAULT_MIN_CHARACTER_LENGTH)),
            min_real_words=int(getattr(module, "MIN_REAL_WORDS", DEFAULT_MIN_REAL_WORDS)),
            patterns=[*DEFAULT_HALLUCINATION_PATTERNS, *extra_patterns],
            stopwords=DEFAULT_STOPWORDS | extra_stop,
            custom_filters=custom,
        )
        log.info(
            "filter config %s: %d extra patterns, %d extra stopwords, %d custom filters",
            path,
            len(extra_patterns),
            len(extra_stop),
            len(custom),
        )
        return built

    def keep(self, text: str) -> tuple[bool, str]:
        cleaned = (text or "").strip()
        if len(cleaned) < self.min_character_length:
            return False, f"shorter than {self.min_character_length} characters"
        if self._any is None or self._any.fullmatch(cleaned):
            for pattern in self.patterns:
                if pattern.fullmatch(cleaned):
                    return False, f"matches hallucination pattern {pattern.pattern!r}"
        real = 0
        for word in _WORD.finditer(cleaned.lower()):
            real += word.group() not in self.stopwords
            if real >= self.min_real_words:
                break
        if real < self.min_real_words:
            return False, f"fewer than {self.min_real_words} real words"
        for check in self.custom_filters:
            try:
                if not check(cleaned):
                    return False, f"rejected by custom filter {getattr(check, '__name__', check)!r}"
            except Exception:  # a buggy user filter must not block persistence
                log.warning("custom filter %r raised; keeping the segment", check, exc_info=True)
        return True, ""
