"""bench/bots.py's audio check: did every bot deliver every participant's speech, in real time?

Why a module of its own: the check must know how the simulated page hands audio over. Google Meet
gives a media element per participant (one transcription session each, ``speaker`` set); Teams and
Zoom web give one mixed stream (one session, no ``speaker``), in which each participant's turn is
found by correlation. A check written for one path and run on the other matches nothing, and a
round with nothing compared must be a loud failure, never a quiet "not sustained".
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from vexa.testing.simulator_standins import RecordedSession
from vexa.testing.speech import best_alignment, windowed_match

SR = 16000
WINDOW_MIN = 0.8
"""A 2 s window of a voice counts as delivered at this correlation or above."""
REALTIME_MIN = 0.95
STEP_WINDOW_S = 0.25
STEP_SEARCH_S = 0.1
STEP_MATCH = 0.97
"""A 0.25 s piece of a voice placed at this correlation or above dates the delivered audio there."""


@dataclass
class CaptureCheck:
    """Every session's real-time ratio, every participant's correlation (whole and per 2 s window)."""

    ratios: list[float] = field(default_factory=list)
    correlations: list[float] = field(default_factory=list)
    windows: list[float] = field(default_factory=list)
    low_windows: list[str] = field(default_factory=list)
    """``bot/voice/window index: correlation`` of each window below ``WINDOW_MIN`` (where it broke)."""
    problems: list[str] = field(default_factory=list)
    """Why a bot's capture cannot be counted as matching: no session, no audio, nothing compared."""
    steps: list[tuple[str, float, int]] = field(default_factory=list)
    """``(bot/voice, seconds into the session, samples)`` where a voice's offset moved: + a gap was
    put into its audio there, - that many of its samples never arrived."""

    def figures(self) -> dict[str, object]:
        return {
            "sessions": len(self.ratios),
            "realtime_ratio_min": round(float(min(self.ratios, default=0.0)), 3),
            "speech_correlation_min": round(float(min(self.correlations, default=0.0)), 3),
            "windows_2s_matching": f"{sum(w > 0.9 for w in self.windows)}/{len(self.windows)}",
            "window_correlation_min": round(float(min(self.windows, default=0.0)), 3),
            "low_windows": self.low_windows,
            "samples_lost": -sum(n for _, _, n in self.steps if n < 0),
            "gap_samples_inserted": sum(n for _, _, n in self.steps if n > 0),
            "offset_steps": [f"{who} at {t:.2f} s: {n:+d}" for who, t, n in self.steps],
            "capture_problems": self.problems,
        }

    @property
    def ok(self) -> bool:
        return (
            not self.problems
            and bool(self.windows)
            and min(self.ratios, default=0.0) >= REALTIME_MIN
            and min(self.windows) >= WINDOW_MIN
            and all(n > 0 for _, _, n in self.steps)
        )


def offset_steps(reference: np.ndarray, received: np.ndarray) -> list[tuple[float, int]]:
    """Where the voice's offset inside ``received`` moves, and by how many samples.

    Why beside the 2 s windows: a window scores low only when a break falls well inside it, so a
    10 ms gap near a window's edge passes unseen, and a window does not say whether samples were
    lost or a gap was put in. Here each 0.25 s piece of the WAV is placed near where the previous
    one was; a move is ``(seconds into received, samples)``: + a gap, - samples missing.
    """
    offset, _ = best_alignment(reference, received)
    win, search = int(STEP_WINDOW_S * SR), int(STEP_SEARCH_S * SR)
    quiet = 0.3 * float(np.sqrt(np.mean(reference**2)))
    lag: int | None = None
    steps: list[tuple[float, int]] = []
    for start in range(0, len(reference) - win + 1, win // 2):
        piece = reference[start : start + win]
        if float(np.sqrt(np.mean(piece**2))) < quiet:
            continue  # pauses and quiet sounds place badly
        centre = offset + start + (lag or 0)
        lo = max(0, centre - (search if lag is not None else 3 * search))
        segment = received[lo : centre + win + search]
        if len(segment) < win:
            break
        at, match = best_alignment(piece, segment)
        if match < STEP_MATCH:
            continue
        moved = lo + at - offset - start
        if lag is not None and abs(moved - lag) > 2:  # a sample or two is resampling jitter
            steps.append(((offset + start + moved) / SR, moved - lag))
        lag = moved
    return steps


def realtime_ratio(session: RecordedSession) -> float:
    """Samples received / (16 kHz x the session's wall time): below 1, audio fell behind or was lost."""
    span = (session.closed_at or time.time()) - session.opened_at
    return session.samples / (span * SR) if span > 0 else 0.0


def check_bots(
    sessions: list[RecordedSession], natives: list[str], refs: dict[str, np.ndarray], mixed: bool
) -> CaptureCheck:
    """Check each bot's sessions (found by the native meeting id in their config) against the voices."""
    check = CaptureCheck()
    by_meeting: dict[str, list[RecordedSession]] = {}
    for s in sessions:
        by_meeting.setdefault(str(s.config.get("meeting_id")), []).append(s)
    for i, native in enumerate(natives):
        mine = by_meeting.get(native, [])
        check.ratios.extend(realtime_ratio(s) for s in mine)
        for name, ref in refs.items():
            if mixed:
                streams = [s for s in mine if s.speaker is None]
            else:
                streams = [s for s in mine if s.speaker == name]
            audio = np.concatenate([s.audio() for s in streams]) if streams else np.zeros(0, np.float32)
            if len(audio) == 0:
                path = "mixed stream" if mixed else f"session of {name}"
                check.problems.append(f"bot {i} ({native}): no {path} reached transcription")
                continue
            windows = windowed_match(ref, audio)
            if not windows:
                check.problems.append(f"bot {i} ({native}): {name}'s speech gave no window to compare")
                continue
            check.correlations.append(best_alignment(ref, audio)[1])
            check.steps += [(f"{i}/{name}", t, n) for t, n in offset_steps(ref, audio)]
            check.windows.extend(windows)
            check.low_windows += [f"{i}/{name}/{k}: {w:.2f}" for k, w in enumerate(windows) if w < WINDOW_MIN]
    return check
