"""The bot records each participant's track in a SIMULATED meeting with a real Chromium.

Transcription and the bot-manager are stand-ins here (as in test_bot_meetings); the
browser, capture, chunked FLAC writing and the finalization are the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from bot_test_helpers import NATIVE_IDS, bot_config

from vexa.bot.main import Bot
from vexa.bot.settings import BotSettings
from vexa.collector.speakers import parse_events
from vexa.recordings.audio import SR, decode
from vexa.recordings.finalize import finalize, load_tracks
from vexa.recordings.storage import LocalStorage
from vexa.testing.speech import best_alignment, read_wav, resample, windowed_match

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PREFIX = "42/7"


def reference(path: Path) -> np.ndarray:
    data, rate = read_wav(path)
    return resample(data, rate, SR)


def assert_track_matches(track: np.ndarray, wav: Path) -> int:
    """The participant's own speech, whole, per 1 s window; returns where it starts in the track."""
    ref = reference(wav)
    offset, _ = best_alignment(ref, track)
    windows = windowed_match(ref, track, window_s=1.0)
    good = sum(r > 0.9 for r in windows)
    # 16-bit FLAC is lossless to ~1e-4; one window may suffer a page stall of the shared machine.
    assert len(windows) >= 3 and good >= len(windows) - 1, f"track does not match per window: {windows}"
    return offset


async def test_bot_records_each_participant_and_the_mix(
    participants, simulator_factory, transcription_standin, callbacks, alice_wav, bob_wav, tmp_path
) -> None:
    sim = simulator_factory(participants, admit_after=0.5, leave_after_audio=1.0, play_delay=1.5)
    config = bot_config("google_meet", sim, transcription_standin.url, callbacks.url).model_copy(
        update={"recording_enabled": True, "recording_prefix": PREFIX}
    )
    settings = BotSettings(STORAGE_BACKEND="local", RECORDINGS_DIR=str(tmp_path), RECORDING_CHUNK_S=2.0)
    assert await asyncio.wait_for(Bot(config, settings).run(), 90) == 0

    storage = LocalStorage(tmp_path)
    chunks = await storage.list(f"{PREFIX}/chunks")
    assert len(chunks) >= 4, "written in chunks during the meeting"
    result = await finalize(storage, PREFIX)
    by_name = {t.name: t for t in result.tracks if t.name}
    assert set(by_name) == {"Alice", "Bob"}
    alice_at = assert_track_matches(by_name["Alice"].audio, alice_wav)
    bob_at = assert_track_matches(by_name["Bob"].audio, bob_wav)
    # One timeline: Bob spoke after Alice (her speech, then the simulator's 0.8 s gap).
    gap_s = (bob_at - alice_at - len(reference(alice_wav))) / SR
    assert 0.3 < gap_s < 2.5, gap_s

    files = {m["metadata"]["track"]: m for m in result.media_files}
    assert set(files) == {"mixed", by_name["Alice"].track_id, by_name["Bob"].track_id}
    mixed = decode(await storage.get(files["mixed"]["storage_path"]))
    for wav, at in ((alice_wav, alice_at), (bob_wav, bob_at)):
        ref = reference(wav)
        _, corr = best_alignment(ref, mixed[at - SR // 10 : at + len(ref) + SR // 10])
        assert corr > 0.9, "each participant is heard in the mix, in place"


async def test_killed_bot_leaves_a_playable_recording_up_to_the_kill(
    participants, simulator_factory, transcription_standin, callbacks, tmp_path
) -> None:
    """SIGKILL to the bot's whole process group mid-speech: the chunks written so far play."""
    sim = simulator_factory(participants, admit_after=0.5, leave_after_audio=60, play_delay=1.0)
    config = bot_config("google_meet", sim, transcription_standin.url, callbacks.url).model_copy(
        update={"recording_enabled": True, "recording_prefix": PREFIX}
    )
    env = {
        **os.environ,
        "BOT_CONFIG": config.model_dump_json(),
        "STORAGE_BACKEND": "local",
        "RECORDINGS_DIR": str(tmp_path),
        "RECORDING_CHUNK_S": "2",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vexa",
        "bot",
        env=env,
        start_new_session=True,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    storage = LocalStorage(tmp_path)
    try:
        first_chunk_at = None
        for _ in range(600):  # until 6 s of recording exist after the first chunk
            if await storage.list(f"{PREFIX}/chunks"):
                first_chunk_at = first_chunk_at or time.monotonic()
                if time.monotonic() - first_chunk_at >= 6:
                    break
            await asyncio.sleep(0.1)
        assert first_chunk_at is not None, "the bot wrote no chunk"
        started_s = 2.0  # the first chunk closes 2 s after the recording starts
        killed_after_s = time.monotonic() - first_chunk_at + started_s
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()

    result = await finalize(storage, PREFIX)
    mixed = next(m for m in result.media_files if m["metadata"]["track"] == "mixed")
    audio = decode(await storage.get(mixed["storage_path"]))
    seconds = len(audio) / SR
    # Everything up to the last whole chunk before the kill (2 s chunks, plus scheduling slack).
    assert killed_after_s - 3.5 <= seconds <= killed_after_s + 0.5, (seconds, killed_after_s)
    assert float(np.sqrt(np.mean(audio**2))) > 0.01, "the recording holds Alice's speech, not silence"


async def test_mixed_path_records_speaker_events_on_the_recording_timeline(
    participants, simulator_factory, transcription_standin, callbacks, tmp_path
) -> None:
    """Teams (one mixed stream): the recording keeps the page's speaker events beside its audio.

    They are what names the speakers of the final transcript after the meeting, when the
    live copy in Redis may be gone: each must fall on its speaker's voice in the recording.
    """
    sim = simulator_factory(participants, admit_after=0.5, leave_after_audio=1.0, play_delay=1.5, overlap=0.0)
    config = bot_config("teams", sim, transcription_standin.url, callbacks.url).model_copy(
        update={"recording_enabled": True, "recording_prefix": PREFIX}
    )
    settings = BotSettings(STORAGE_BACKEND="local", RECORDINGS_DIR=str(tmp_path), RECORDING_CHUNK_S=2.0)
    assert await asyncio.wait_for(Bot(config, settings).run(), 90) == 0

    storage = LocalStorage(tmp_path)
    started_at, tracks = await load_tracks(storage, PREFIX)
    assert [t.name for t in tracks] == [None], "one unattributed (mixed) track"
    events = parse_events(tracks[0].speaker_log)
    starts = [e.name for e in events if e.kind == "SPEAKER_START"]
    assert [n for i, n in enumerate(starts) if i == 0 or starts[i - 1] != n] == ["Alice", "Bob"], starts
    # On the recording's timeline: plan time 0 is this many seconds into the recording.
    origin = sim.state(NATIVE_IDS["teams"])["origin_at"] - started_at
    who = {"Alice": 0, "Bob": 1}
    for e in events:
        t = e.ms / 1000
        spans = [(origin + v.on, origin + v.off) for v in sim.sim.plan.voiced if v.who == who[e.name]]
        if e.kind == "SPEAKER_START":
            assert any(a - 0.25 <= t <= b for a, b in spans), (e, t, spans)
        else:
            assert any(a <= t <= b + 0.25 for a, b in spans), (e, t, spans)
