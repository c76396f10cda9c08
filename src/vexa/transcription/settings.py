"""Configuration of the transcription service (one pydantic-settings class).

Env-var names follow upstream Vexa / WhisperLive where they exist
(``WHISPER_MODEL``, ``DEVICE``, ``COMPUTE_TYPE``, ``WL_MAX_CLIENTS``,
``REDIS_STREAM_NAME``, ``MAX_CONNECTION_TIME``).
"""

from __future__ import annotations

import os

from pydantic import Field

from vexa.config import SPEAKER_STREAM_DEFAULT, STREAM_NAME_DEFAULT, RedisSettings


def _default_workers() -> int:
    # Measured here: on 2 vCPUs one thread per decode is fastest and two decodes in
    # parallel scale ~2x, so one worker per core (capped) with CPU_THREADS=1.
    return max(1, min(4, os.cpu_count() or 1))


class TranscriptionSettings(RedisSettings):
    """Everything the streaming Whisper server reads from the environment."""

    whisper_model: str = Field("base", alias="WHISPER_MODEL")
    device: str = Field("cpu", alias="DEVICE")
    compute_type: str = Field("default", alias="COMPUTE_TYPE")
    cpu_threads: int = Field(1, alias="CPU_THREADS", ge=0)
    inference_workers: int = Field(default_factory=_default_workers, alias="INFERENCE_WORKERS", ge=1)
    beam_size: int = Field(1, alias="BEAM_SIZE", ge=1)
    final_beam_size: int = Field(5, alias="FINAL_BEAM_SIZE", ge=1)
    encoder_min_window_s: float = Field(10.0, alias="ENCODER_MIN_WINDOW_S", ge=1, le=30)
    final_encoder_min_window_s: float = Field(20.0, alias="FINAL_ENCODER_MIN_WINDOW_S", ge=1, le=30)
    allow_model_download: bool = Field(False, alias="ALLOW_MODEL_DOWNLOAD")

    max_clients: int = Field(8, alias="WL_MAX_CLIENTS", ge=1)
    max_connection_time: float = Field(4 * 3600.0, alias="MAX_CONNECTION_TIME", gt=0)
    min_chunk_s: float = Field(1.0, alias="MIN_CHUNK_S", gt=0)
    max_buffer_s: float = Field(15.0, alias="MAX_BUFFER_S", ge=5, le=28)
    end_silence_ms: int = Field(500, alias="END_SILENCE_MS", ge=100)
    early_decode_ms: int = Field(250, alias="EARLY_DECODE_MS", ge=50)
    idle_commit_ms: int = Field(400, alias="IDLE_COMMIT_MS", ge=100)
    vad_threshold: float = Field(0.5, alias="VAD_THRESHOLD", gt=0, lt=1)
    no_speech_thresh: float = Field(0.6, alias="NO_SPEECH_THRESH", ge=0, le=1)
    send_last_n_segments: int = Field(10, alias="SEND_LAST_N_SEGMENTS", ge=1)

    health_host: str | None = Field(None, alias="HEALTH_HOST")
    health_port: int = Field(9091, alias="HEALTH_PORT", ge=0)

    redis_stream_name: str = Field(STREAM_NAME_DEFAULT, alias="REDIS_STREAM_NAME")
    speaker_stream_name: str = Field(SPEAKER_STREAM_DEFAULT, alias="REDIS_SPEAKER_STREAM_NAME")
    publish_buffer_max: int = Field(10_000, alias="PUBLISH_BUFFER_MAX", ge=10)
    require_meeting_context: bool = Field(False, alias="REQUIRE_MEETING_CONTEXT")
    standalone: bool = Field(
        False,
        alias="WL_STANDALONE",
        description="WhisperLive-replacement mode: serve clients without a bot token (anonymous "
        "WhisperLive clients, upstream bots). Off: only a bot holding its meeting's token gets a slot.",
    )

    def resolved_compute_type(self) -> str:
        """int8 on CPU, float16 on GPU unless the user chose."""
        if self.compute_type != "default":
            return self.compute_type
        return "int8" if self.device == "cpu" else "float16"
