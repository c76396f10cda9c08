"""One Whisper model shared by every session, run off the event loop.

Why a small thread pool and no cross-session batching: on CPU (the 2-vCPU
machines this targets) one CTranslate2 thread per decode is fastest and two
decodes in parallel scale ~2x, while batching several sessions' windows into
one call only pays on a GPU. So the model is loaded with ``num_workers =
INFERENCE_WORKERS`` and ``cpu_threads = CPU_THREADS`` (1), and decodes go
through a pool of the same size. Each session has at most one decode queued,
and waiting finals run before waiting drafts (``scheduling``).

Why short encoder windows: Whisper pads every input to 30 s, and on CPU the
encoder pass over those 30 s is most of a decode's cost, although a meeting
utterance is usually a few seconds. CTranslate2 encodes a shorter mel window
just as well (measured here: 10 s cost 0.23 s against 1.6 s for 30 s), so a
decode encodes ``max(ENCODER_MIN_WINDOW_S, audio + 1 s)``. Very short windows
make Whisper loop on short clips, hence the 10 s floor and a check: a decode
that looks like a repetition loop is redone on the full 30 s window.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from vexa.transcription.scheduling import DRAFT, FINAL, PriorityGate
from vexa.transcription.words import SAMPLE_RATE, DecodeJob, DecodeResult, Word

log = logging.getLogger(__name__)

FULL_WINDOW_FRAMES = 3000  # Whisper's 30 s of 10 ms mel frames
MAX_TOKENS_PER_S = 10  # far above speech (~5 tokens/s): bounds the cost of a repetition loop
LOOP_COMPRESSION_RATIO = 2.4  # Whisper's own threshold for "this text repeats itself"
MAX_WORDS_PER_S = 6.0  # faster than anyone speaks: a loop or an invention
_KEY = re.compile(r"[^\w']+")


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Per-session knobs (from the client's first message, bounded by the server's)."""

    no_speech_thresh: float = 0.6
    hotwords: str | None = None
    beam_size: int = 1
    final_beam_size: int = 5


@dataclass(slots=True)
class DecodeOutcome:
    result: DecodeResult
    seconds: float


def _make_model_class() -> type:
    from faster_whisper import WhisperModel

    class WindowedWhisper(WhisperModel):
        """faster-whisper's model with the encoder window bounded per call (see module doc)."""

        _window = threading.local()

        def encode(self, features):  # type: ignore[no-untyped-def]
            frames = getattr(self._window, "frames", None)
            if frames is not None and features.shape[-1] > frames:
                features = np.ascontiguousarray(features[..., :frames])
            return super().encode(features)

        def limit_window(self, frames: int | None) -> None:
            self._window.frames = frames

    return WindowedWhisper


class WhisperEngine:
    """Loads the model once; ``decode`` runs Whisper in the worker pool."""

    def __init__(
        self,
        model_path: str,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 1,
        workers: int = 1,
        allow_download: bool = False,
        min_window_s: float = 10.0,
        final_min_window_s: float = 20.0,
    ) -> None:
        self.model_path = model_path
        self.device = device
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self.workers = workers
        self.allow_download = allow_download
        self.min_window_s = min_window_s
        self.final_min_window_s = max(min_window_s, final_min_window_s)
        self.model = None
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="whisper")
        self._gate = PriorityGate(workers)  # the pool never queues: the gate orders who runs next
        self.decodes = 0
        self.full_window_retries = 0
        self.decode_seconds = 0.0

    def load(self) -> None:
        """Blocking: load Whisper (from local files)."""
        started = time.monotonic()
        self.model = _make_model_class()(
            self.model_path,
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=self.cpu_threads,
            num_workers=self.workers,
            local_files_only=not self.allow_download,
        )
        log.info(
            "loaded Whisper %s (%s, %s, %d worker(s) x %d thread(s)) in %.2fs",
            self.model_path,
            self.device,
            self.compute_type,
            self.workers,
            self.cpu_threads,
            time.monotonic() - started,
        )

    @property
    def loaded(self) -> bool:
        return self.model is not None

    @property
    def multilingual(self) -> bool:
        return bool(self.model is not None and self.model.model.is_multilingual)

    async def decode(self, job: DecodeJob, options: DecodeOptions) -> DecodeOutcome:
        loop = asyncio.get_running_loop()
        async with self._gate.slot(FINAL if job.final else DRAFT):
            return await loop.run_in_executor(self._executor, self._decode, job, options)

    @property
    def busy(self) -> int:
        """Decodes running now: the gate's slots in use (only decodes take them)."""
        return self.workers - self._gate.free

    @property
    def queued(self) -> int:
        """Decodes waiting for a worker (health: a growing number means the box is saturated)."""
        return self._gate.queued

    def _decode(self, job: DecodeJob, options: DecodeOptions) -> DecodeOutcome:
        started = time.monotonic()
        result = self._transcribe(job, options)
        seconds = time.monotonic() - started
        self.decodes += 1
        self.decode_seconds += seconds
        return DecodeOutcome(result, seconds)

    def _window_frames(self, audio: np.ndarray, final: bool = False) -> int | None:
        if self.device != "cpu":
            return None  # on a GPU the 30 s window is cheap and batched well
        floor = self.final_min_window_s if final else self.min_window_s
        seconds = max(floor, len(audio) / SAMPLE_RATE + 1.0)
        frames = int(np.ceil(seconds)) * 100
        return None if frames >= FULL_WINDOW_FRAMES else frames

    def _detect(self, audio: np.ndarray) -> dict[str, float]:
        assert self.model is not None
        self.model.limit_window(self._window_frames(audio))
        _, _, all_probs = self.model.detect_language(audio)
        return dict(all_probs)

    def _transcribe(self, job: DecodeJob, options: DecodeOptions) -> DecodeResult:
        assert self.model is not None, "load() first"
        language, probability = "en", None
        if self.multilingual:
            language = job.language
            if language is None:
                probs = self._detect(job.detect_audio if job.detect_audio is not None else job.audio)
                language, probability = _choose(job.choose_language, probs, job.speech_s)
        frames = self._window_frames(job.audio, job.final)
        words, loop = self._run(job, options, language, frames)
        if loop and frames is not None:
            self.full_window_retries += 1
            words, _ = self._run(job, options, language, None)
        return DecodeResult(words, language, probability)

    def _run(
        self, job: DecodeJob, options: DecodeOptions, language: str, frames: int | None
    ) -> tuple[list[Word], bool]:
        """One transcription; returns (words, looks like a repetition loop)."""
        assert self.model is not None
        self.model.limit_window(frames)
        duration = len(job.audio) / SAMPLE_RATE
        beam = options.final_beam_size if job.final else options.beam_size
        segments, _info = self.model.transcribe(
            job.audio,
            language=language,
            task=job.task if self.multilingual else "transcribe",
            beam_size=beam,
            best_of=max(1, beam),
            # No temperature fallback: a draft often ends mid-word, which trips the fallback
            # thresholds and doubles the cost; loops are handled by the full-window retry.
            temperature=0.0,
            initial_prompt=job.prompt,
            condition_on_previous_text=False,
            word_timestamps=True,
            vad_filter=False,
            without_timestamps=False,
            hotwords=options.hotwords,
            no_speech_threshold=options.no_speech_thresh,
            max_new_tokens=int(16 + MAX_TOKENS_PER_S * duration),
        )
        words: list[Word] = []
        text = []
        for seg in segments:
            if seg.no_speech_prob > options.no_speech_thresh and seg.avg_logprob < -1.0:
                continue  # Whisper's own "this is not speech" signal
            text.append(seg.text)
            for w in seg.words or []:
                if w.word.strip():
                    words.append(
                        Word(job.offset + w.start, job.offset + max(w.end, w.start), w.word, w.probability)
                    )
        joined = "".join(text).strip()
        loop = (
            _compression_ratio(joined) > LOOP_COMPRESSION_RATIO
            or len(words) > 4 + MAX_WORDS_PER_S * duration
            or _repeats([w.text for w in words])
        )
        return words, loop

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _choose(
    chooser: Callable[[dict[str, float], float], tuple[str, float]] | None,
    probs: dict[str, float],
    speech_s: float,
) -> tuple[str, float]:
    if chooser is not None:
        return chooser(probs, speech_s)
    lang, p = max(probs.items(), key=lambda kv: kv[1])
    return lang, p


def _repeats(words: list[str], times: int = 3, longest: int = 4) -> bool:
    """True if some run of 1-``longest`` words repeats ``times`` times in a row ("5. 5. 5.")."""
    keys = [_KEY.sub("", w.lower()) for w in words]
    for n in range(1, longest + 1):
        for i in range(len(keys) - n * times + 1):
            gram = keys[i : i + n]
            if all(keys[i + k * n : i + (k + 1) * n] == gram for k in range(1, times)):
                return True
    return False


def _compression_ratio(text: str) -> float:
    if len(text) < 24:
        return 0.0
    data = text.encode()
    return len(data) / len(zlib.compress(data))
