"""The bot's transcription stream against a recording stand-in: protocol, reconnect, no loss/duplication."""

from __future__ import annotations

import asyncio
import json

import numpy as np

from vexa.bot.transcription_client import SAMPLE_RATE, TranscriptionStream
from vexa.embedded import free_port
from vexa.testing.simulator_standins import RecordingTranscriptionServer

CONFIG = {
    "language": "en",
    "task": "transcribe",
    "platform": "google_meet",
    "meeting_id": "abc-defg-hij",
    "token": "vbt_meeting-token",
}


def ramp(start: int, n: int) -> np.ndarray:
    """Distinct float32 values (exact integers), so any lost or repeated sample is visible."""
    return np.arange(start, start + n, dtype=np.float32)


async def test_first_message_is_config_then_audio_then_end_of_audio() -> None:
    server = await RecordingTranscriptionServer(free_port()).start()
    try:
        stream = TranscriptionStream(server.url, CONFIG, speaker="Alice")
        task = asyncio.create_task(stream.run())
        stream.push(ramp(0, 4000), 1000.0)
        stream.send_event(
            {"type": "speaker_activity", "event_type": "SPEAKER_START", "participant_name": "Alice"},
            wall_time=1000.0,
        )
        await stream.close()
        await task
        assert len(server.sessions) == 1
        session = server.sessions[0]
        assert session.config["speaker"] == "Alice"
        assert (
            session.config["meeting_id"] == "abc-defg-hij" and session.config["token"] == "vbt_meeting-token"
        )
        assert session.config["uid"] == stream.stats.sessions[0].uid
        assert session.ended, "END_OF_AUDIO must close the session"
        np.testing.assert_array_equal(session.audio(), ramp(0, 4000))
        # Offset 0 is the first sample, captured 0.25 s before wall time 1000.0.
        assert session.texts[0]["relative_timestamp_ms"] == 250
    finally:
        await server.stop()


async def test_service_restart_mid_stream_loses_and_duplicates_nothing() -> None:
    port = free_port()
    server = await RecordingTranscriptionServer(port).start()
    server.close_after_samples = 3 * SAMPLE_RATE  # the "service" restarts after 3 s of audio
    stream = TranscriptionStream(server.url, CONFIG, speaker="Bob", confirm_interval_s=0.2)
    task = asyncio.create_task(stream.run())
    chunk, total, pushed = 1600, 10 * SAMPLE_RATE, 0
    try:
        # Push 10 s of audio at ~20x real time; after the close, stop the server for a while
        # (a restart), so audio piles up in the bot's buffer, then bring it back on the same port.
        restarted = False
        while pushed < total:
            stream.push(ramp(pushed, chunk), 1000.0 + (pushed + chunk) / SAMPLE_RATE)
            pushed += chunk
            await asyncio.sleep(0.005)
            if not restarted and server.sessions and server.sessions[0].closed_at is not None:
                await server.stop()
                await asyncio.sleep(0.6)
                await server.start()
                restarted = True
        await stream.close()
        await task
    finally:
        await server.stop()
    sessions = server.sessions
    assert len(sessions) >= 2, "the restart must have opened a new session"
    assert len({s.uid for s in sessions}) == len(sessions), "each reconnect is a new session uid"
    received = np.concatenate([s.audio() for s in sessions])
    assert len(received) == total, f"received {len(received)} samples, pushed {total}"
    np.testing.assert_array_equal(received, ramp(0, total))
    assert stream.stats.reconnects >= 1 and stream.stats.samples_dropped == 0
    # The second session's offset 0 is the first sample it got, as the record says.
    assert stream.stats.sessions[1].first_sample == sessions[0].samples
    assert sessions[-1].ended


async def test_events_after_reconnect_are_relative_to_the_new_session() -> None:
    server = await RecordingTranscriptionServer(free_port()).start()
    server.close_after_samples = SAMPLE_RATE
    stream = TranscriptionStream(server.url, CONFIG, confirm_interval_s=0.1)
    task = asyncio.create_task(stream.run())
    try:
        for i in range(20):  # 2 s of audio, sample 0 captured at wall time 100.0
            stream.push(ramp(i * 1600, 1600), 100.0 + (i + 1) * 0.1)
            await asyncio.sleep(0.01)
        for _ in range(200):
            if len(server.sessions) >= 2:
                break
            await asyncio.sleep(0.05)
        stream.send_event(
            {"type": "speaker_activity", "event_type": "SPEAKER_START", "participant_name": "Carol"},
            wall_time=101.5,
        )
        await stream.close()
        await task
    finally:
        await server.stop()
    second = server.sessions[1]
    first_sample = sum(s.samples for s in server.sessions[:1])
    expected = round((1.5 - first_sample / SAMPLE_RATE) * 1000)
    event = next(t for t in second.texts if t.get("type") == "speaker_activity")
    assert event["relative_timestamp_ms"] == expected
    assert json.dumps(event)  # plain JSON, as the contract says


async def test_buffer_is_bounded_while_the_service_is_down() -> None:
    stream = TranscriptionStream(f"ws://127.0.0.1:{free_port()}", CONFIG, max_buffer_s=1.0)
    task = asyncio.create_task(stream.run())
    for i in range(30):  # 3 s of audio, nobody listening
        stream.push(ramp(i * 1600, 1600))
    assert stream.stats.samples_dropped == 2 * SAMPLE_RATE
    assert stream._pending_samples == SAMPLE_RATE
    await stream.close(within_s=1.0)
    await task
