"""transcription-collector settings: upstream Vexa's names, plus ours for speakers, filters, dead letters."""

from __future__ import annotations

import os
import socket

from pydantic import Field

from vexa.config import SPEAKER_STREAM_DEFAULT, STREAM_NAME_DEFAULT, DataSettings
from vexa.streams import DEAD_LETTER_SUFFIX


def _default_consumer_name() -> str:
    # hostname-pid: unique per process, so several collectors share one consumer group
    # and a restarted collector never inherits a dead one's identity by accident.
    return f"{socket.gethostname()}-{os.getpid()}"


class CollectorSettings(DataSettings):
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

    filter_config_path: str | None = Field(None, alias="FILTER_CONFIG_PATH")
    dead_letter_stream_raw: str | None = Field(None, alias="DEAD_LETTER_STREAM")

    meeting_cache_ttl_s: float = Field(
        5.0,
        ge=0,
        alias="MEETING_CACHE_TTL_S",
        description="How long a token+native id -> meeting lookup is reused.",
    )
    meeting_base_url: str | None = Field(None, alias="MEETING_BASE_URL")

    @property
    def dead_letter_stream(self) -> str:
        return self.dead_letter_stream_raw or self.redis_stream_name + DEAD_LETTER_SUFFIX

    @property
    def speaker_dead_letter_stream(self) -> str:
        return self.speaker_events_stream + DEAD_LETTER_SUFFIX
