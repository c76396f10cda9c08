"""transcription-collector settings: upstream Vexa's names, plus ours for speakers, filters, dead letters."""

from __future__ import annotations

import os
import socket

from pydantic import Field

from vexa.config import SPEAKER_STREAM_DEFAULT, STREAM_NAME_DEFAULT, DataSettings
from vexa.recordings.settings import RecordingStorageSettings
from vexa.streams import DEAD_LETTER_MAXLEN_DEFAULT, DEAD_LETTER_SUFFIX


def _default_consumer_name() -> str:
    # hostname-pid: unique per process, so several collectors share one consumer group
    # and a restarted collector never inherits a dead one's identity by accident.
    return f"{socket.gethostname()}-{os.getpid()}"


TINY_MODELS = frozenset({"tiny", "tiny.en"})


class PostprocessSettings(RecordingStorageSettings):
    """Post-meeting work the collector hosts: finalizing recordings, the final transcript, retention."""

    postprocess_enabled: bool = Field(True, alias="POSTPROCESS_ENABLED")
    postprocess_concurrency: int = Field(
        1, ge=1, le=16, alias="POSTPROCESS_CONCURRENCY", description="Meetings transcribed at once."
    )
    postprocess_model: str | None = Field(
        None,
        alias="POSTPROCESS_MODEL",
        description=(
            "The best model you have (folder, bundled name, or hub name); "
            "default WHISPER_MODEL, or base when WHISPER_MODEL is a tiny one."
        ),
    )
    whisper_model: str = Field("base", alias="WHISPER_MODEL")
    allow_model_download: bool = Field(False, alias="ALLOW_MODEL_DOWNLOAD")

    @property
    def offline_model(self) -> str:
        """POSTPROCESS_MODEL; unset, the live model, except that a tiny live model gets ``base``.

        Why: a box that can afford ``tiny`` live has time after the meeting for ``base`` (about
        4x the CPU, spent once, niced), and ``base`` is what lowers the WER on real speech;
        both are installed by scripts/setup.sh (``vexa[models]``).
        """
        if self.postprocess_model:
            return self.postprocess_model
        if self.whisper_model in TINY_MODELS:
            return "base"
        return self.whisper_model

    @property
    def offline_model_fallback(self) -> str | None:
        """The model to use when the derived default (``base``) is not installed: the live one."""
        derived = not self.postprocess_model and self.offline_model != self.whisper_model
        return self.whisper_model if derived else None

    postprocess_beam_size: int = Field(5, ge=1, le=10, alias="POSTPROCESS_BEAM_SIZE")
    postprocess_cpu_threads: int = Field(1, ge=0, alias="POSTPROCESS_CPU_THREADS")
    postprocess_device: str = Field("cpu", alias="POSTPROCESS_DEVICE")
    postprocess_compute_type: str = Field("default", alias="POSTPROCESS_COMPUTE_TYPE")
    postprocess_nice: int = Field(
        10, ge=0, le=19, alias="POSTPROCESS_NICE", description="CPU priority drop, so live work comes first."
    )
    postprocess_claim_idle_s: float = Field(
        1800.0,
        gt=0,
        alias="POSTPROCESS_CLAIM_IDLE_S",
        description="A job unfinished this long by its collector (it died) is taken over by another.",
    )
    recording_retention_days: float = Field(
        0, ge=0, alias="RECORDING_RETENTION_DAYS", description="Delete recordings this old (0 keeps them)."
    )
    retention_interval_s: float = Field(3600.0, gt=0, alias="RETENTION_INTERVAL_S")


class CollectorSettings(DataSettings, PostprocessSettings):
    """Stream consumption, persistence timing, speakers and filters."""

    redis_stream_name: str = Field(STREAM_NAME_DEFAULT, alias="REDIS_STREAM_NAME")
    redis_consumer_group: str = Field("collector_group", alias="REDIS_CONSUMER_GROUP")
    consumer_name: str = Field(default_factory=_default_consumer_name, alias="CONSUMER_NAME")
    redis_stream_read_count: int = Field(
        500,
        ge=1,
        le=10_000,
        alias="REDIS_STREAM_READ_COUNT",
        description="Entries per XREADGROUP: one batch, committed in one MULTI.",
    )
    redis_stream_block_ms: int = Field(2000, ge=1, alias="REDIS_STREAM_BLOCK_MS")
    pending_msg_timeout_ms: int = Field(
        60_000,
        ge=1,
        alias="PENDING_MSG_TIMEOUT_MS",
        description="Idle time after which another consumer claims.",
    )
    pending_claim_interval_s: float = Field(
        30.0,
        gt=0,
        alias="PENDING_CLAIM_INTERVAL_S",
        description="How often to look for stale pending messages.",
    )
    stream_trim_interval_s: float = Field(
        10.0,
        gt=0,
        alias="STREAM_TRIM_INTERVAL_S",
        description="How often acknowledged stream entries are trimmed (never unread ones).",
    )
    background_task_interval: float = Field(10.0, gt=0, alias="BACKGROUND_TASK_INTERVAL")
    immutability_threshold: float = Field(30.0, ge=0, alias="IMMUTABILITY_THRESHOLD")

    speaker_events_stream: str = Field(SPEAKER_STREAM_DEFAULT, alias="SPEAKER_EVENTS_STREAM")
    speaker_consumer_group: str = Field("collector_speakers", alias="SPEAKER_CONSUMER_GROUP")
    speaker_events_ttl: int = Field(86_400, ge=1, alias="SPEAKER_EVENTS_TTL")
    speaker_min_confidence: float = Field(
        0.35,
        ge=0,
        le=1,
        alias="SPEAKER_MIN_CONFIDENCE",
        description="Mixed-stream words attributed with less confidence are labelled unknown "
        "(speaker null, UNKNOWN) instead of guessed; 0 always guesses.",
    )

    filter_config_path: str | None = Field(None, alias="FILTER_CONFIG_PATH")
    dead_letter_stream_raw: str | None = Field(None, alias="DEAD_LETTER_STREAM")
    dead_letter_maxlen: int = Field(
        DEAD_LETTER_MAXLEN_DEFAULT,
        ge=100,
        alias="DEAD_LETTER_MAXLEN",
        description="Entries kept per dead-letter stream (XADD MAXLEN ~): the oldest go first.",
    )

    meeting_cache_ttl_s: float = Field(
        60.0,
        ge=0,
        alias="MEETING_CACHE_TTL_S",
        description=(
            "How long a session -> meeting binding is reused before it is read again. A session "
            "keeps its meeting for life; the re-read only notices a meeting deleted through another "
            "collector. At 5 s, 1,000 live sessions re-read 200 bindings a second (~0.6 ms of "
            "collector CPU per segment measured with bench/ws.py)."
        ),
    )
    meeting_base_url: str | None = Field(None, alias="MEETING_BASE_URL")
    transcript_cache_bytes: int = Field(
        64 * 1024 * 1024,
        ge=0,
        alias="TRANSCRIPT_CACHE_BYTES",
        description="Encoded JSON transcripts kept for repeated GETs (0: off); checked against the "
        "database on every read, so never stale.",
    )

    @property
    def dead_letter_stream(self) -> str:
        return self.dead_letter_stream_raw or self.redis_stream_name + DEAD_LETTER_SUFFIX

    @property
    def speaker_dead_letter_stream(self) -> str:
        return self.speaker_events_stream + DEAD_LETTER_SUFFIX
