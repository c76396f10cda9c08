"""The WhisperLive-compatible wire format: the first message and server replies."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

END_OF_AUDIO = b"END_OF_AUDIO"
BACKEND = "faster_whisper"


class VadParameters(BaseModel):
    model_config = ConfigDict(extra="ignore")

    threshold: float = Field(0.5, gt=0, lt=1)
    min_silence_duration_ms: int | None = Field(None, ge=100, le=5000)
    speech_pad_ms: int | None = Field(None, ge=0, le=1000)


class SessionConfig(BaseModel):
    """The client's first message. Unknown WhisperLive fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    uid: str = Field(min_length=1, max_length=255)
    language: str | None = Field(None, max_length=16)
    task: Literal["transcribe", "translate"] = "transcribe"
    model: str | None = Field(None, max_length=500)
    use_vad: bool = True
    platform: str | None = Field(None, max_length=100)
    meeting_url: str | None = Field(None, max_length=2048)
    token: str | None = Field(None, max_length=512)
    meeting_id: str | None = Field(None, max_length=255)
    meeting_db_id: int | None = Field(None, ge=1, le=2**31 - 1, description="Ours: the meeting's db id.")
    initial_prompt: str | None = Field(None, max_length=2000)
    vad_parameters: VadParameters | None = None
    max_connection_time: float | None = Field(None, gt=0)
    speaker: str | None = Field(None, max_length=255)
    send_last_n_segments: int | None = Field(None, ge=1, le=100)
    no_speech_thresh: float | None = Field(None, ge=0, le=1)
    hotwords: str | None = Field(None, max_length=1000)

    @field_validator("meeting_id", mode="before")
    @classmethod
    def _native_id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        return normalize_language(value)

    @property
    def has_meeting_context(self) -> bool:
        return bool(self.platform and self.meeting_id and self.token)


class SessionControl(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["session_control"]
    language: str | None = Field(None, max_length=16)
    task: Literal["transcribe", "translate"] | None = None

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        return normalize_language(value)


def normalize_language(value: str | None) -> str | None:
    """A Whisper language code, or None for auto-detection ("auto", "" and None)."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    if value is None or value.lower() in ("", "auto", "none"):
        return None
    value = value.lower()
    if value not in _LANGUAGE_CODES:
        raise ValueError(f"unsupported language {value!r} (use a Whisper language code such as 'en')")
    return value


class ProtocolError(ValueError):
    """A client message we cannot accept; the text goes back to the client."""


def parse_config(raw: str | bytes) -> SessionConfig:
    if isinstance(raw, bytes):
        raise ProtocolError(
            "the first message must be a JSON text message with the session config, not audio"
        )
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"the first message is not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ProtocolError("the first message must be a JSON object")
    try:
        return SessionConfig.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(describe(exc)) from exc


def describe(exc: ValidationError) -> str:
    """'field: problem; field: problem' without echoing values (they may hold tokens)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{where}: {err['msg']}")
    return "invalid session config: " + "; ".join(parts)


def error(uid: str | None, message: str) -> str:
    return json.dumps({"uid": uid, "status": "ERROR", "message": message})


def ready(uid: str) -> str:
    return json.dumps({"uid": uid, "message": "SERVER_READY", "backend": BACKEND})


def wait(uid: str | None, minutes: float) -> str:
    return json.dumps({"uid": uid, "status": "WAIT", "message": round(minutes, 1)})
