"""One Whisper model shared by every session, run off the event loop.

Why a small thread pool and no cross-session batching: on CPU (the 2-vCPU
machines this targets) one CTranslate2 thread per decode is fastest and two
decodes in parallel scale ~2x, while batching several sessions' windows into
one call only pays on a GPU and needs its own word-timestamp alignment. So the
model is loaded with ``num_workers = INFERENCE_WORKERS`` and ``cpu_threads =
CPU_THREADS`` (1), and decodes go through a pool of the same size. Each session
has at most one decode queued; its next decode takes all audio that arrived
meanwhile, so under load chunks grow instead of queues, and the pool serves
sessions in FIFO order (fair round-robin).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from vexa.transcription.streaming import SAMPLE_RATE, DecodeJob, DecodeResult, Word

log = logging.getLogger(__name__)

# Whole-segment texts Whisper is known to invent on silence or noise (trained on subtitles).
_HALLUCINATIONS = re.compile(
    r"^(thanks? (you )?(so much )?for watching|please subscribe|subscribe to .*|subtitles? by .*|"
    r".*amara\.org.*|transcribed by .*|you|\.+|bye\.?)$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Per-session knobs (from the client's first message, bounded by the server's)."""

    use_vad: bool = True
    vad_threshold: float = 0.5
    min_silence_ms: int = 600
    speech_pad_ms: int = 100
    no_speech_thresh: float = 0.6
    hotwords: str | None = None
    beam_size: int = 1


@dataclass(slots=True)
class DecodeOutcome:
    speech: list[tuple[float, float]]
    result: DecodeResult | None
    seconds: float
    skipped: bool = False  # VAD heard no speech newer than the previous decode: Whisper not run


NEW_SPEECH_TOLERANCE_S = 0.2  # VAD pads speech ends; less than this past the last decode is not new


class WhisperEngine:
    """Loads the model once; ``decode`` runs VAD + Whisper in the worker pool."""

    def __init__(
        self,
        model_path: str,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 1,
        workers: int = 1,
        allow_download: bool = False,
    ) -> None:
        self.model_path = model_path
        self.device = device
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads
        self.workers = workers
        self.allow_download = allow_download
        self.model = None
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="whisper")
        self.busy = 0
        self.decodes = 0
        self.skipped = 0
        self.decode_seconds = 0.0

    def load(self) -> None:
        """Blocking: load Whisper and Silero VAD (both from local files)."""
        from faster_whisper import WhisperModel
        from faster_whisper.vad import get_vad_model

        started = time.monotonic()
        self.model = WhisperModel(
            self.model_path,
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=self.cpu_threads,
            num_workers=self.workers,
            local_files_only=not self.allow_download,
        )
        get_vad_model()
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
        self.busy += 1
        try:
            return await loop.run_in_executor(self._executor, self._decode, job, options)
        finally:
            self.busy -= 1

    def _decode(self, job: DecodeJob, options: DecodeOptions) -> DecodeOutcome:
        started = time.monotonic()
        speech = speech_intervals(job.audio, options) if options.use_vad else [(0.0, _dur(job.audio))]
        if not speech:
            return self._done(DecodeOutcome([], None, time.monotonic() - started))
        heard = job.decoded_until
        if heard is not None and options.use_vad and speech[-1][1] <= heard + NEW_SPEECH_TOLERANCE_S:
            # Only silence since the last decode: re-decoding would repeat it. Saves most of
            # the decodes around pauses, and the final decode when the stream ends in silence.
            self.skipped += 1
            return self._done(DecodeOutcome(speech, None, time.monotonic() - started, skipped=True))
        result = self._transcribe(job, options)
        self.decodes += 1
        return self._done(DecodeOutcome(speech, result, time.monotonic() - started))

    def _done(self, outcome: DecodeOutcome) -> DecodeOutcome:
        self.decode_seconds += outcome.seconds
        return outcome

    def _transcribe(self, job: DecodeJob, options: DecodeOptions) -> DecodeResult:
        assert self.model is not None, "load() first"
        language = job.language if self.multilingual else "en"
        segments, info = self.model.transcribe(
            job.audio,
            language=language,
            task=job.task if self.multilingual else "transcribe",
            beam_size=options.beam_size,
            best_of=max(1, options.beam_size),
            # No temperature fallback: a streaming buffer often ends mid-word, which trips the
            # fallback thresholds and doubles the cost, and the next decode (<= MIN_CHUNK_S
            # later) is the better retry. Loops are caught by the compression-ratio check below.
            temperature=0.0,
            initial_prompt=job.prompt,
            condition_on_previous_text=False,
            word_timestamps=True,
            vad_filter=False,
            without_timestamps=False,
            hotwords=options.hotwords,
            no_speech_threshold=options.no_speech_thresh,
        )
        words: list[Word] = []
        for seg in segments:
            if seg.no_speech_prob > options.no_speech_thresh and seg.avg_logprob < -1.0:
                continue  # Whisper's own "this is silence" signal
            if seg.compression_ratio > 2.4 or _HALLUCINATIONS.match(seg.text.strip()):
                continue  # a repetition loop, or a stock phrase from subtitle training data
            for w in seg.words or []:
                if not w.word.strip():
                    continue
                words.append(
                    Word(job.offset + w.start, job.offset + max(w.end, w.start), w.word, w.probability)
                )
        return DecodeResult(words, info.language, info.language_probability)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _dur(audio: np.ndarray) -> float:
    return len(audio) / SAMPLE_RATE


def speech_intervals(audio: np.ndarray, options: DecodeOptions) -> list[tuple[float, float]]:
    """Silero VAD speech intervals, in seconds from the start of ``audio``."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if len(audio) < 512:
        return []
    vad = VadOptions(
        threshold=options.vad_threshold,
        min_speech_duration_ms=150,
        min_silence_duration_ms=options.min_silence_ms,
        speech_pad_ms=options.speech_pad_ms,
    )
    return [(c["start"] / SAMPLE_RATE, c["end"] / SAMPLE_RATE) for c in get_speech_timestamps(audio, vad)]
