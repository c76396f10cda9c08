"""The bot in SIMULATED meetings (vexa.testing.simulator) with a real Chromium.

Transcription and the bot-manager are recording stand-ins here (their real
services are tested in their own areas); the browser, the join flows, the audio
capture and the Redis command channel are real.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx
import numpy as np
import pytest
from bot_test_helpers import BOT_TOKEN, NATIVE_IDS, assert_turns, bot_config

from vexa.bot.main import Bot
from vexa.bot.settings import BotSettings
from vexa.testing.speech import best_alignment, read_wav, resample, windowed_match

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def reference(path) -> np.ndarray:
    data, rate = read_wav(path)
    return resample(data, rate, 16000)


def assert_heard(session_audio: np.ndarray, wav) -> None:
    """The participant's actual speech arrived, whole: high correlation over the full WAV length."""
    ref = reference(wav)
    assert len(session_audio) >= len(ref)
    offset, _ = best_alignment(ref, session_audio)
    # Per 1 s window, each aligned locally: a CPU stall of the shared test machine can make the
    # SIMULATED page's own playback skip once, which shifts everything after it and sinks a
    # whole-file correlation; at most one window may show that, every other must match.
    windows = windowed_match(ref, session_audio, window_s=1.0)
    good = sum(r > 0.9 for r in windows)
    assert len(windows) >= 3 and good >= len(windows) - 1, f"speech does not match per window: {windows}"
    window = session_audio[offset : offset + len(ref)]
    rms_ratio = float(np.sqrt(np.mean(window**2)) / np.sqrt(np.mean(ref**2)))
    assert 0.5 < rms_ratio < 2.0, rms_ratio
    # Outside the speech the per-participant track is (near) silent.
    outside = np.concatenate([session_audio[:offset], session_audio[offset + len(ref) :]])
    assert np.sqrt(np.mean(outside**2)) < 0.05 * np.sqrt(np.mean(ref**2)) + 1e-4


@pytest.mark.parametrize("platform", ["google_meet", "teams", "zoom"])
async def test_bot_joins_transcribes_each_participant_and_leaves_when_meeting_ends(
    platform, participants, simulator_factory, transcription_standin, callbacks, alice_wav, bob_wav, tmp_path
) -> None:
    # Every platform's page offering per-participant elements: the bot takes the per-participant path.
    sim = simulator_factory(
        participants, admit_after=1.0, leave_after_audio=1.5, play_delay=2.0, audio="per_participant"
    )
    if platform == "teams":
        # Also: the transcription service restarts mid-meeting (after 3 s of Alice's session).
        transcription_standin.close_after_samples = 3 * 16000
        transcription_standin.close_speaker = "Alice"
    config = bot_config(platform, sim, transcription_standin.url, callbacks.url)
    assert config.recording_enabled is False
    bot = Bot(config, BotSettings(STORAGE_BACKEND="local", RECORDINGS_DIR=str(tmp_path / "recordings")))
    code = await asyncio.wait_for(bot.run(), 90)

    assert code == 0
    assert bot.audio_transport == "socket", "audio comes over the loopback socket, not the binding"
    assert not (tmp_path / "recordings").exists(), "recording off: no file"
    assert callbacks.statuses() == ["joining", "awaiting_admission", "active", "completed"]
    final = callbacks.calls[-1]
    assert final["reason"] == "meeting_ended" and final["meeting_id"] == 42
    assert final["participants"] == ["Alice", "Bob"]

    state = sim.state(NATIVE_IDS[platform])
    assert state["bot_name"] == "Vexa Notetaker"
    assert state["bot_mic_muted"] is True and state["bot_camera_off"] is True
    assert [p["name"] for p in state["played"]] == ["Alice", "Bob"]

    by_speaker = transcription_standin.by_speaker()
    assert set(by_speaker) == {"Alice", "Bob"}, "one session per participant, attributed by `speaker`"
    for name, wav in (("Alice", alice_wav), ("Bob", bob_wav)):
        sessions = by_speaker[name]
        for s in sessions:
            assert s.config["meeting_id"] == NATIVE_IDS[platform] and s.config["platform"] == platform
            assert s.config["token"] == BOT_TOKEN and s.config["language"] == "en"
        assert sessions[-1].ended, "END_OF_AUDIO at the end"
        audio = np.concatenate([s.audio() for s in sessions])
        stream = bot.audio.streams[f"p:sim-participant-{1 if name == 'Alice' else 2}"]
        assert len(audio) == stream.stats.samples_pushed, "every captured sample reached transcription once"
        assert_heard(audio, wav)

    # Speaker events arrive in order (across the restart's two sessions, for teams) ...
    alice_sessions = by_speaker["Alice"]
    events = [t for s in alice_sessions for t in s.texts if t.get("type") == "speaker_activity"]
    if platform == "teams":
        # The new session got the events its (re-sent) audio covers, starting with Alice's START.
        events = [t for t in alice_sessions[-1].texts if t.get("type") == "speaker_activity"]
    assert_turns(events, ["Alice", "Bob"])
    assert all(e["participant_id"] for e in events)
    if platform == "teams":
        assert len(alice_sessions) == 2, "the restart opened a second session for Alice"
        assert bot.audio.streams["p:sim-participant-1"].stats.reconnects >= 1
    else:
        # ... and, relative to the session's audio offset 0, bracket Alice's actual speech.
        offset, _ = best_alignment(reference(alice_wav), alice_sessions[0].audio())
        alice_ends = [
            e for e in events if e["participant_name"] == "Alice" and e["event_type"] == "SPEAKER_END"
        ]
        start_ms, end_ms = events[0]["relative_timestamp_ms"], alice_ends[-1]["relative_timestamp_ms"]
        assert abs(start_ms - offset / 16) < 400, (start_ms, offset / 16)
        assert abs(end_ms - (offset + len(reference(alice_wav))) / 16) < 600


async def _wait_status(callbacks, status: str, within_s: float = 40) -> None:
    await callbacks.wait_for(status, within_s)


async def test_host_removes_bot_reports_evicted(
    participants, simulator_factory, transcription_standin, callbacks
):
    sim = simulator_factory(participants[:1], admit_after=0.5, leave_after_audio=30)
    bot = Bot(bot_config("zoom", sim, transcription_standin.url, callbacks.url), BotSettings())
    run = asyncio.create_task(bot.run())
    await _wait_status(callbacks, "active")
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{sim.base_url}/_sim/remove-bot", params={"meeting": NATIVE_IDS["zoom"]})
        assert r.status_code == 200
    assert await asyncio.wait_for(run, 30) == 0
    assert callbacks.calls[-1]["status"] == "completed" and callbacks.calls[-1]["reason"] == "evicted"


async def test_host_rejects_bot(participants, simulator_factory, transcription_standin, callbacks):
    sim = simulator_factory(participants[:1], admit_after=-1)
    bot = Bot(bot_config("google_meet", sim, transcription_standin.url, callbacks.url), BotSettings())
    run = asyncio.create_task(bot.run())
    await _wait_status(callbacks, "awaiting_admission")
    async with httpx.AsyncClient() as client:
        await client.post(f"{sim.base_url}/_sim/reject")
    assert await asyncio.wait_for(run, 30) == 1
    assert callbacks.statuses() == ["joining", "awaiting_admission", "failed"]
    assert callbacks.calls[-1]["reason"] == "awaiting_admission_rejected"
    assert transcription_standin.sessions == [], "nothing is captured before admission"


async def test_admission_timeout(participants, simulator_factory, transcription_standin, callbacks):
    sim = simulator_factory(participants[:1], admit_after=-1)
    config = bot_config("teams", sim, transcription_standin.url, callbacks.url, admission_timeout_s=3)
    assert await asyncio.wait_for(Bot(config, BotSettings()).run(), 60) == 1
    assert callbacks.calls[-1]["status"] == "failed"
    assert callbacks.calls[-1]["reason"] == "awaiting_admission_timeout"
    assert callbacks.calls[-1]["details"]["message"] == "not admitted within 3s"
    assert sim.state(NATIVE_IDS["teams"])["asked"] is True
    assert transcription_standin.sessions == []


async def test_unknown_meeting_reports_meeting_not_found(
    participants, simulator_factory, transcription_standin, callbacks
):
    sim = simulator_factory(participants[:1])
    config = bot_config(
        "google_meet", sim, transcription_standin.url, callbacks.url, native_id="not-a-meet-code"
    )
    assert await asyncio.wait_for(Bot(config, BotSettings()).run(), 60) == 1
    assert callbacks.calls[-1] == {
        "meeting_id": 42,
        "status": "failed",
        "reason": "meeting_not_found",
        "details": {"speaker_events": 0, "message": "HTTP 404 for the google_meet meeting page"},
        "participants": [],
    }


async def test_bot_process_obeys_reconfigure_and_leave_commands_from_redis(
    participants, simulator_factory, transcription_standin, callbacks, redis_url, redis
):
    """`python -m vexa bot` as the bot-manager starts it: BOT_CONFIG in, callbacks and exit code out."""
    sim = simulator_factory(participants, admit_after=0.5, leave_after_audio=60)
    config = bot_config("google_meet", sim, transcription_standin.url, callbacks.url, redis_url=redis_url)
    env = {
        **os.environ,
        "BOT_CONFIG": config.model_dump_json(exclude={"token"}),  # as the bot-manager: no secret in it
        "BOT_TOKEN": BOT_TOKEN,
        "LOG_LEVEL": "INFO",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vexa",
        "bot",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await _wait_status(callbacks, "active", 60)
        for _ in range(100):  # until Alice's session is open
            if transcription_standin.sessions:
                break
            await asyncio.sleep(0.1)
        channel = "bot_commands:meeting:42"
        assert await redis.publish(channel, json.dumps({"action": "reconfigure", "language": "de"})) == 1
        await asyncio.sleep(0.5)
        await redis.publish(channel, json.dumps({"action": "leave"}))
        out, _ = await asyncio.wait_for(proc.communicate(), 40)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = out.decode()
    assert proc.returncode == 0, log[-3000:]
    assert callbacks.calls[-1]["status"] == "completed" and callbacks.calls[-1]["reason"] == "stopped"
    assert sim.state(NATIVE_IDS["google_meet"])["bot_left"] is True, "the bot clicked Leave call"
    assert BOT_TOKEN not in log
    controls = [
        t for s in transcription_standin.sessions for t in s.texts if t.get("type") == "session_control"
    ]
    assert controls and controls[0]["language"] == "de"
    assert all(s.ended for s in transcription_standin.sessions), "END_OF_AUDIO on every session"


async def test_bot_leaves_when_alone(participants, simulator_factory, transcription_standin, callbacks):
    sim = simulator_factory(participants[:1], admit_after=0.5, leave_after_audio=60)
    config = bot_config("google_meet", sim, transcription_standin.url, callbacks.url, leave_when_alone_s=2)
    run = asyncio.create_task(Bot(config, BotSettings()).run())
    await _wait_status(callbacks, "active")
    async with httpx.AsyncClient() as client:
        await client.post(f"{sim.base_url}/_sim/everyone-leaves")
    assert await asyncio.wait_for(run, 30) == 0
    assert callbacks.calls[-1]["reason"] == "left_alone"
    state = sim.state(NATIVE_IDS["google_meet"])
    assert state["bot_left"] is True and state["ended"] is False
