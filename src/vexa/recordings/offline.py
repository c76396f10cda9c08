"""Offline transcription of one participant's track: the best model, beam search, whole-file VAD.

Runs in a child process of the post-processor's pool (``vexa.collector.postprocess``):
the model is loaded once per child and kept, and the child lowers its own CPU
priority, so live transcription (another process at normal priority) always gets
the CPU first. Unlike live decoding it sees the whole track at once: Silero VAD
over the whole file, beam search, and each window decoded with the previous
text as context.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_model: Any = None
_model_spec: tuple[str, str, str, int] | None = None


@dataclass(frozen=True)
class OfflineOptions:
    model: str
    device: str = "cpu"
    compute_type: str = "default"
    cpu_threads: int = 1
    beam_size: int = 5
    language: str | None = None
    hotwords: str | None = None
    # Word timings, for a mixed track whose speakers are attributed word by word afterwards.
    word_timestamps: bool = False


def lower_priority(niceness: int) -> None:
    """Pool initializer: this child yields the CPU to everything at normal priority."""
    if niceness > 0:
        try:
            os.nice(niceness)
        except OSError:
            log.warning("could not lower the post-processor's CPU priority")


def _load(options: OfflineOptions) -> Any:
    global _model, _model_spec
    spec = (options.model, options.device, options.compute_type, options.cpu_threads)
    if _model is None or _model_spec != spec:
        from faster_whisper import WhisperModel

        _model = WhisperModel(
            options.model,
            device=options.device,
            compute_type=options.compute_type,
            cpu_threads=options.cpu_threads,
            num_workers=1,
        )
        _model_spec = spec
    return _model


def transcribe_track(audio: np.ndarray, options: OfflineOptions) -> tuple[list[dict[str, Any]], float]:
    """Segments ``{start, end, text, language}`` (track timeline, seconds) and the CPU seconds spent.

    With ``options.word_timestamps`` each segment also has ``words``: ``[(start, end, word)]``
    (the word with its leading space, as the live path keeps them).
    """
    if len(audio) == 0:
        return [], 0.0
    cpu_before = time.process_time()  # this child's CPU, all its threads
    model = _load(options)
    segments, info = model.transcribe(
        audio,
        language=options.language,
        beam_size=options.beam_size,
        vad_filter=True,
        condition_on_previous_text=True,
        hotwords=options.hotwords,
        word_timestamps=options.word_timestamps,
    )
    out = []
    for seg in segments:
        text = seg.text.strip()
        if not text or (seg.no_speech_prob > 0.6 and seg.avg_logprob < -1.0):
            continue
        found: dict[str, Any] = {
            "start": round(seg.start, 3),
            "end": round(seg.end, 3),
            "text": text,
            "language": info.language,
        }
        if options.word_timestamps:
            found["words"] = [(round(w.start, 3), round(w.end, 3), w.word) for w in seg.words or []]
        out.append(found)
    return out, time.process_time() - cpu_before
