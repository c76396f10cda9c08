"""Speech detection as audio arrives: Silero probabilities per frame, scored once.

Why incremental: the streaming policy needs to know, every 100 ms or so, whether
a participant is speaking and how long they have been quiet. Running Silero over
the whole buffer on every decode (as before) both cost time that grew with the
buffer and only updated the picture once per decode, so pauses were noticed a
decode late. Here each 32 ms frame is scored exactly once, with the 64-sample
context Silero expects, and a hysteresis (the same thresholds as Silero's own
``get_speech_timestamps``) turns probabilities into speech intervals.

Digital silence (muted participants, idle sessions) is not sent to the model at
all: frames whose peak is below ``SILENT_PEAK`` score 0, which is what makes
many idle sessions nearly free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
FRAME = 512  # Silero's window at 16 kHz
FRAME_S = FRAME / SAMPLE_RATE
SILENT_PEAK = 1e-4  # about -80 dBFS: nothing a microphone or a codec produces while someone speaks

Scorer = Callable[[np.ndarray], np.ndarray]


def silero_scorer() -> Scorer:
    """Silero VAD from the faster-whisper wheel (a local ONNX file, no download)."""
    from faster_whisper.vad import get_vad_model

    model = get_vad_model()

    def score(audio: np.ndarray) -> np.ndarray:
        return np.asarray(model(audio), dtype=np.float32).reshape(-1)

    return score


@dataclass(frozen=True, slots=True)
class VadParams:
    threshold: float = 0.5
    min_speech_s: float = 0.1  # a click or a cough shorter than this does not start speech
    split_s: float = 0.25  # a pause this long inside speech starts a new interval


class SpeechTracker:
    """Frame probabilities -> speech intervals in session time (seconds from sample 0).

    The caller owns the audio: ``frames_to_score(audio, audio_start)`` hands out the
    frames not scored yet (with one frame of left context), a scorer runs them in a
    thread, and ``add_scores`` folds the result in. Intervals older than what the
    caller keeps are dropped with ``forget_before``.
    """

    def __init__(self, params: VadParams | None = None) -> None:
        self.params = params or VadParams()
        self.neg_threshold = max(self.params.threshold - 0.15, 0.01)
        self.scored = 0  # frames scored since session start
        self.intervals: list[list[float]] = []  # [start, end]; the last may still be open
        self._in_speech = False
        self._run_start: float | None = None  # candidate onset while below min_speech
        self._run_frames = 0

    # ---- scoring ------------------------------------------------------------------
    def frames_to_score(self, audio: np.ndarray, audio_start_sample: int) -> tuple[np.ndarray, int] | None:
        """(samples to score, frames they contain) for every complete unscored frame.

        ``audio`` holds session samples from ``audio_start_sample`` on. The returned
        block starts one frame early (context for Silero's first window); its first
        score is discarded by ``add_scores``.
        """
        first = self.scored * FRAME - audio_start_sample
        available = (len(audio) - max(first, 0)) // FRAME
        if first < 0:
            # The caller trimmed audio that was never scored (cannot happen in the session,
            # which trims only decoded, hence scored, audio); skip ahead rather than fail.
            skip = -first // FRAME + (1 if -first % FRAME else 0)
            self.scored += skip
            return self.frames_to_score(audio, audio_start_sample)
        if available <= 0:
            return None
        lead = FRAME if first >= FRAME else 0
        block = audio[first - lead : first + available * FRAME]
        return block, available

    def add_scores(self, probs: np.ndarray, frames: int) -> None:
        """Fold in the probabilities of the ``frames`` newest frames (extra leading scores dropped)."""
        for p in probs[len(probs) - frames :]:
            self._step(float(p))

    def _step(self, prob: float) -> None:
        t0 = self.scored * FRAME_S
        t1 = t0 + FRAME_S
        self.scored += 1
        p = self.params
        if self._in_speech:
            end = self.intervals[-1][1]
            if t0 - end >= p.split_s and prob >= p.threshold:
                self.intervals.append([t0, t1])  # speech again after a pause: a new interval
            elif t0 - end < p.split_s and prob >= self.neg_threshold:
                self.intervals[-1][1] = t1
            return
        if prob >= p.threshold:
            if self._run_start is None:
                self._run_start = t0
            self._run_frames += 1
            if self._run_frames * FRAME_S >= p.min_speech_s:
                self._in_speech = True
                self.intervals.append([self._run_start, t1])
                self._run_start, self._run_frames = None, 0
        else:
            self._run_start, self._run_frames = None, 0

    # ---- what the policy asks ----------------------------------------------------------
    @property
    def scored_until(self) -> float:
        return self.scored * FRAME_S

    def close_speech(self) -> None:
        """End the current interval (an utterance was committed); the next onset opens a new one."""
        self._in_speech = False
        self._run_start, self._run_frames = None, 0

    def last_speech_end(self) -> float | None:
        return self.intervals[-1][1] if self.intervals else None

    def silence_s(self) -> float:
        """Seconds of non-speech since the last speech frame (0 while speaking)."""
        end = self.last_speech_end()
        if end is None:
            return self.scored_until
        return max(0.0, self.scored_until - end)

    def speech_since(self, time: float) -> list[tuple[float, float]]:
        return [(s, e) for s, e in self.intervals if e > time]

    def forget_before(self, time: float) -> None:
        self.intervals = [iv for iv in self.intervals if iv[1] > time or iv is self.intervals[-1]]


def score_block(block: np.ndarray, scorer: Scorer) -> np.ndarray:
    """Score whole frames; frames of digital silence get 0 without running the model."""
    frames = block.reshape(-1, FRAME)
    loud = np.abs(frames).max(axis=1) >= SILENT_PEAK
    probs = np.zeros(len(frames), dtype=np.float32)
    if loud.any():
        # Score from the first loud frame (with one frame of context before it) to the end,
        # so every loud frame sees its true left context.
        first = int(np.argmax(loud))
        lead = max(0, first - 1)
        probs[lead:] = scorer(np.ascontiguousarray(frames[lead:].reshape(-1)))
        probs[~loud] = 0.0
    return probs
