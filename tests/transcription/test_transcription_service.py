"""The real service (child process, tiny.en, real Redis) over a real WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from redis.asyncio import Redis

from conftest import (
    TEXT_A,
    TEXT_B,
    Received,
    Service,
    open_session,
    read_all,
    silence,
    speech,
    start_service,
    stream_audio,
)
from vexa.streams import (
    SessionEndMessage,
    SessionStartMessage,
    SpeakerEvent,
    TranscriptionMessage,
    parse_payload,
)
from vexa.transcription.wer import normalize, wer

pytestmark = [pytest.mark.slow, pytest.mark.model]

STREAM = "transcription_segments"
WER_BOUND = 0.35  # tiny.en on espeak-ng speech measures ~10% offline; streaming adds some


def meeting_config(uid: str, **extra: object) -> dict[str, object]:
    return {
        "uid": uid,
        "language": "en",
        "task": "transcribe",
        "platform": "google_meet",
        "meeting_id": "abc-defg-hij",
        "token": "user-api-key-for-tests-0123456789",
        "meeting_url": "https://meet.google.com/abc-defg-hij",
        **extra,
    }


async def stream_entries(redis: Redis, stream: str, uid: str, *, until_end: bool = True):
    """Entries of ``stream`` for ``uid`` (polls, bounded, until session_end lands)."""
    found = []
    for _ in range(100):
        found = []
        for _id, fields in await redis.xrange(stream):
            raw = fields["payload"]
            msg = parse_payload(raw) if stream == STREAM else SpeakerEvent.model_validate_json(raw)
            if msg.uid == uid:
                found.append(msg)
        if not until_end or (found and isinstance(found[-1], SessionEndMessage)):
            return found
        await asyncio.sleep(0.1)
    return found


async def test_meeting_session_streams_drafts_commits_and_publishes(service: Service, redis: Redis) -> None:
    uid = str(uuid.uuid4())
    a, b = speech(TEXT_A), speech(TEXT_B)
    # No trailing silence after B: only END_OF_AUDIO can make its last words final.
    audio = np.concatenate([silence(0.5), a, silence(1.2), b])
    speaker_at = len(silence(0.5)) + len(a)
    event = {
        "type": "speaker_activity",
        "event_type": "SPEAKER_START",
        "participant_name": "Bob",
        "participant_id": "p-2",
        "relative_timestamp_ms": 4200,
    }
    ws, first = await open_session(service.ws_url, meeting_config(uid, speaker="Alice"))
    assert first == {"uid": uid, "message": "SERVER_READY", "backend": "faster_whisper"}
    got = Received()
    reader = asyncio.create_task(read_all(ws, got))
    await stream_audio(ws, audio, events={speaker_at: event})
    await ws.send(b"END_OF_AUDIO")
    await asyncio.wait_for(reader, 60)
    assert got.closed  # the server closes after flushing

    final = got.final_segments()
    assert final and all(s["completed"] for s in final)
    transcript = " ".join(s["text"] for s in final)
    assert wer(f"{TEXT_A} {TEXT_B}", transcript) <= WER_BOUND, transcript
    assert normalize(transcript)[-1] == "afternoon", "END_OF_AUDIO must flush the tail"
    assert all(s["speaker"] == "Alice" and s["language"] == "en" for s in final)
    starts = [s["start"] for s in final]
    assert starts == sorted(starts) and 0.3 <= starts[0] <= 1.5
    # Drafts came first and were revised before they were committed (same start key).
    final_by_start = {s["start"]: s["text"] for s in final}
    drafts = [s for msg in got.segment_messages() for s in msg if not s["completed"]]
    assert drafts, "streaming should show drafts before the final text"
    assert any(d["start"] in final_by_start and d["text"] != final_by_start[d["start"]] for d in drafts)

    entries = await stream_entries(redis, STREAM, uid)
    assert isinstance(entries[0], SessionStartMessage) and isinstance(entries[-1], SessionEndMessage)
    assert entries[0].meeting_id == "abc-defg-hij" and entries[0].platform == "google_meet"
    body = [e for e in entries[1:-1] if isinstance(e, TranscriptionMessage)]
    assert len(body) == len(entries) - 2 and body
    latest: dict[float, tuple[str, bool]] = {}
    for msg in body:
        for seg in msg.segments:
            assert seg.speaker == "Alice"
            latest[round(seg.start, 3)] = (seg.text, seg.completed)
    assert {k: v for k, v in latest.items() if v[0]} == {s["start"]: (s["text"], True) for s in final}

    events = await stream_entries(redis, "speaker_events_relative", uid, until_end=False)
    assert len(events) == 1
    assert events[0].participant_name == "Bob" and events[0].relative_timestamp_ms == 4200
    assert events[0].meeting_id == "abc-defg-hij" and events[0].token and events[0].platform == "google_meet"
    assert (await service.wait_idle())["active_sessions"] == 0


async def test_plain_whisperlive_session_is_answered_but_not_published(
    service: Service, redis: Redis
) -> None:
    uid = "plain-" + uuid.uuid4().hex[:8]
    ws, first = await open_session(service.ws_url, {"uid": uid, "language": "en", "send_last_n_segments": 5})
    assert first["message"] == "SERVER_READY"
    got = Received()
    reader = asyncio.create_task(read_all(ws, got))
    await stream_audio(ws, np.concatenate([speech(TEXT_B), silence(0.8)]), speed=2.0)
    await ws.send(b"END_OF_AUDIO")
    await asyncio.wait_for(reader, 60)
    transcript = " ".join(s["text"] for s in got.final_segments())
    assert wer(TEXT_B, transcript) <= WER_BOUND, transcript
    assert await redis.xlen(STREAM) == 0


async def test_client_disconnect_mid_stream_leaves_no_session(service: Service, redis: Redis) -> None:
    uid = str(uuid.uuid4())
    ws, first = await open_session(service.ws_url, meeting_config(uid))
    assert first["message"] == "SERVER_READY"
    await stream_audio(ws, speech(TEXT_A)[: 3 * 16000], speed=3.0)
    ws.transport.abort()  # no close handshake: a crashed client
    body = await service.wait_idle()
    assert body["active_sessions"] == 0
    entries = await stream_entries(redis, STREAM, uid)
    assert isinstance(entries[-1], SessionEndMessage)  # what was received is still finalised


@pytest.mark.parametrize(
    ("first", "needle"),
    [
        (b"\x00\x00\x80\x3f", "JSON text message"),
        ("not json at all", "not valid JSON"),
        ('["uid"]', "JSON object"),
        ('{"language": "en"}', "uid"),
        ('{"uid": "x1", "task": "dance"}', "task"),
        ('{"uid": "x2", "language": "klingon"}', "language"),
        ('{"uid": "x3", "vad_parameters": {"threshold": 7}}', "vad_parameters.threshold"),
    ],
)
async def test_bad_first_message_gets_error_and_close(service: Service, first: object, needle: str) -> None:
    from websockets.asyncio.client import connect

    async with connect(service.ws_url, open_timeout=10) as ws:
        await ws.send(first)  # type: ignore[arg-type]
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply["status"] == "ERROR" and needle in reply["message"]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code is not None


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        (b"\x00\x00\x80", "multiple of 4"),
        (np.array([0.1, np.nan, 0.2], "<f4").tobytes(), "NaN"),
        ((np.ones(800) * 12000).astype("<f4").tobytes(), "int16"),
    ],
)
async def test_non_float_frames_get_a_clear_error(service: Service, frame: bytes, needle: str) -> None:
    ws, first = await open_session(service.ws_url, {"uid": uuid.uuid4().hex})
    assert first["message"] == "SERVER_READY"
    await ws.send(frame)
    reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert reply["status"] == "ERROR" and needle in reply["message"]
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code is not None
    assert (await service.wait_idle())["active_sessions"] == 0


async def test_capacity_limit_answers_wait_and_health_reports_full(service: Service) -> None:
    opened = []
    for _ in range(2):  # WL_MAX_CLIENTS=2
        ws, first = await open_session(service.ws_url, {"uid": uuid.uuid4().hex, "max_connection_time": 600})
        assert first["message"] == "SERVER_READY"
        opened.append(ws)
    code, body = await asyncio.to_thread(service.health)
    assert code == 503 and body["status"] == "full" and body["active_sessions"] == 2 and body["capacity"] == 2
    ws, reply = await open_session(service.ws_url, {"uid": "third"})
    assert reply["uid"] == "third" and reply["status"] == "WAIT"
    assert 0 < float(reply["message"]) <= 10.0  # minutes until the soonest session must end
    for ws in opened:
        await ws.send(b"END_OF_AUDIO")
        await ws.close()
    body = await service.wait_idle()
    assert body["active_sessions"] == 0 and body["model_loaded"] is True
    code, _ = await asyncio.to_thread(service.health)
    assert code == 200


async def test_max_connection_time_disconnects(service: Service) -> None:
    ws, first = await open_session(service.ws_url, {"uid": uuid.uuid4().hex, "max_connection_time": 1.5})
    assert first["message"] == "SERVER_READY"
    got = Received()
    reader = asyncio.create_task(read_all(ws, got))
    await stream_audio(ws, silence(1.0))
    await asyncio.wait_for(reader, 20)
    assert got.messages[-1]["message"] == "DISCONNECT" and got.closed


def test_missing_model_exits_with_instructions(redis_url: str, tmp_session_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="exited"):
        start_service(
            redis_url, tmp_session_dir, "nomodel", WHISPER_MODEL=str(tmp_session_dir / "no-such-model")
        )
    log = (tmp_session_dir / "transcription-nomodel.log").read_text()
    assert "vexa models install" in log and "WHISPER_MODEL=/path/to/ctranslate2-model" in log


async def test_meeting_context_required_when_configured(redis_url: str, tmp_session_dir: Path) -> None:
    svc = await asyncio.to_thread(
        start_service, redis_url, tmp_session_dir, "strict", REQUIRE_MEETING_CONTEXT="true"
    )
    try:
        ws, reply = await open_session(svc.ws_url, {"uid": "no-context"})
        assert reply["status"] == "ERROR" and "meeting context" in reply["message"]
        ws, reply = await open_session(svc.ws_url, meeting_config("with-context"))
        assert reply["message"] == "SERVER_READY"
        await ws.send(b"END_OF_AUDIO")
        await ws.close()
    finally:
        await asyncio.to_thread(svc.proc.stop)
