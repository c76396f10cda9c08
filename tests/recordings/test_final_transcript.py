"""The post-meeting transcript: real speech per participant, a real Whisper, the collector's API.

Each participant's track is real read speech (Debian's pocketsphinx-testdata),
written by the bot's recorder; the post-processor finalizes it and decodes each
track in its own niced child process with beam search and whole-file VAD.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
import pytest_asyncio
from recording_helpers import insert_meeting, record, record_mixed
from redis.asyncio import Redis

from vexa.collector.app import create_app
from vexa.collector.settings import CollectorSettings
from vexa.db import Database
from vexa.recordings.jobs import POSTPROCESS_STREAM, enqueue_postprocess
from vexa.testing.real_speech import librivox
from vexa.transcription.wer import wer
from vexa.webhooks.emit import QUEUE_KEY as WEBHOOK_QUEUE_KEY

pytestmark = pytest.mark.slow

WER_BOUND = 0.15  # tiny.en with beam 5 and whole-track VAD, on three LibriVox clips


@pytest_asyncio.fixture
async def api(database_url: str, redis_url: str, tmp_path) -> AsyncIterator:
    settings = CollectorSettings(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CONSUMER_NAME="test-final",
        DB_POOL_SIZE=3,
        STORAGE_BACKEND="local",
        RECORDINGS_DIR=str(tmp_path),
        POSTPROCESS_MODEL="tiny.en",
    )  # type: ignore[call-arg]
    app = create_app(settings, run_workers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield app, client


async def test_final_transcript_per_participant_replaces_live_by_default(
    api, db: Database, redis: Redis, make_user
) -> None:
    app, client = api
    clips = librivox()
    alice_clips, bob_clips = [clips[0], clips[2]], [clips[1]]
    owner, key = await make_user()
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(
            "UPDATE users SET data = $1::jsonb WHERE id = $2",
            (
                json.dumps(
                    {
                        "webhook_url": "http://127.0.0.1:9/hook",
                        "webhook_events": {"recording.ready": True, "transcription.ready": True},
                    }
                ),
                owner,
            ),
        )
    meeting_id, rec = await insert_meeting(db, owner, "fin-aaaa-bbb")
    silence = np.zeros(8000, np.float32)
    alice = np.concatenate(
        [clips[0].audio, silence, np.zeros(len(clips[1].audio), np.float32), clips[2].audio]
    )
    bob = clips[1].audio
    bob_at = (len(clips[0].audio) + len(silence)) / 16000
    await record(
        app.state.recording_storage, rec["storage_prefix"], {"Alice": (0.0, alice), "Bob": (bob_at, bob)}
    )

    await redis.delete(WEBHOOK_QUEUE_KEY)
    # Through the queue, as the bot-manager hands it over when the meeting ends.
    await enqueue_postprocess(redis, meeting_id)
    state = await _run_jobs(app, client, key)
    assert await redis.xlen(POSTPROCESS_STREAM) == 0, "the job was acknowledged and removed"
    assert state["status"] == "completed" and state["progress"] == 1.0 and state["segments"] > 0

    final = (await client.get("/transcripts/google_meet/fin-aaaa-bbb", headers={"X-API-Key": key})).json()
    segments = final["segments"]
    assert segments and all(s["session_uid"] == "final" for s in segments)
    assert {s["speaker"] for s in segments} == {"Alice", "Bob"}, "speaker names are exact, per track"
    said = {name: " ".join(s["text"] for s in segments if s["speaker"] == name) for name in ("Alice", "Bob")}
    refs = {"Alice": " ".join(c.text for c in alice_clips), "Bob": " ".join(c.text for c in bob_clips)}
    overall = wer(refs["Alice"] + " " + refs["Bob"], said["Alice"] + " " + said["Bob"])
    assert overall <= WER_BOUND, (overall, said)
    for name, other in (("Alice", "Bob"), ("Bob", "Alice")):
        assert wer(refs[name], said[name]) < wer(refs[other], said[name]) - 0.5, "each one's own words"
    bob_segments = [s for s in segments if s["speaker"] == "Bob"]
    assert abs(bob_segments[0]["start"] - bob_at) < 1.5, "times on the recording's timeline"

    live = (
        await client.get("/transcripts/google_meet/fin-aaaa-bbb?source=live", headers={"X-API-Key": key})
    ).json()
    assert live["segments"] == [], "the live transcript (none was streamed here) stays apart"

    queued = [json.loads(job) for job in await redis.zrange(WEBHOOK_QUEUE_KEY, 0, -1)]
    assert {job["event"] for job in queued} == {"recording.ready", "transcription.ready"}


async def _run_jobs(app, client, key: str) -> dict:
    """The post-processor's worker until the meeting's final transcript is done."""
    worker = asyncio.create_task(app.state.collector.postprocessor.run())
    try:
        state: dict = {}
        for _ in range(240):
            meeting = (await client.get("/meetings", headers={"X-API-Key": key})).json()["meetings"][0]
            state = meeting["data"].get("final_transcript") or {}
            if state.get("status") in ("completed", "failed"):
                break
            await asyncio.sleep(0.5)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
    return state


async def test_final_transcript_of_a_mixed_track_names_speakers_word_by_word(
    api, db: Database, redis: Redis, make_user
) -> None:
    """Teams/Zoom: one mixed track; speakers from the speaker events the bot recorded beside it.

    All clips are one reader's voice, so only the events can tell the turns apart; nothing
    is in Redis (the live copy of the events may have expired long before).
    """
    app, client = api
    clips = librivox()
    turns_audio = [("Alice", clips[0]), ("Bob", clips[1]), ("Alice", clips[2])]
    gap = np.zeros(int(0.6 * 16000), np.float32)
    pieces, turns, at = [], [], 0.5
    pieces.append(np.zeros(8000, np.float32))
    for name, clip in turns_audio:
        pieces += [clip.audio, gap]
        # The indicator (already dated back by the bot) is a little loose at both ends.
        turns.append((name, at - 0.1, at + clip.seconds + 0.15))
        at += clip.seconds + len(gap) / 16000
    owner, key = await make_user()
    meeting_id, rec = await insert_meeting(db, owner, "mix-aaaa-bbb")
    await record_mixed(app.state.recording_storage, rec["storage_prefix"], np.concatenate(pieces), turns)
    assert not await redis.keys("speaker_events:*"), "no live speaker events to lean on"

    await enqueue_postprocess(redis, meeting_id)
    state = await _run_jobs(app, client, key)
    assert state["status"] == "completed", state

    final = (await client.get("/transcripts/google_meet/mix-aaaa-bbb", headers={"X-API-Key": key})).json()
    segments = final["segments"]
    assert segments and all(s["session_uid"] == "final" for s in segments)
    assert {s["speaker"] for s in segments} == {"Alice", "Bob"}, [(s["speaker"], s["text"]) for s in segments]
    order = [s["speaker"] for s in segments]
    runs = [who for i, who in enumerate(order) if i == 0 or order[i - 1] != who]
    assert runs == ["Alice", "Bob", "Alice"], runs
    said = {name: " ".join(s["text"] for s in segments if s["speaker"] == name) for name in ("Alice", "Bob")}
    refs = {"Alice": f"{clips[0].text} {clips[2].text}", "Bob": clips[1].text}
    for name, other in (("Alice", "Bob"), ("Bob", "Alice")):
        assert wer(refs[name], said[name]) <= WER_BOUND * 1.5, (name, said[name])
        assert wer(refs[name], said[name]) < wer(refs[other], said[name]) - 0.5, "each one's own words"
    bob = [s for s in segments if s["speaker"] == "Bob"]
    assert abs(bob[0]["start"] - turns[1][1]) < 1.0, "Bob's turn where the events put it"


def test_post_meeting_model_is_base_for_a_tiny_live_model_unless_configured() -> None:
    """Unset POSTPROCESS_MODEL: tiny live -> base after the meeting; any other live model -> itself."""
    from vexa.collector.settings import PostprocessSettings

    tiny = PostprocessSettings(WHISPER_MODEL="tiny.en")  # type: ignore[call-arg]
    assert (tiny.offline_model, tiny.offline_model_fallback) == ("base", "tiny.en")
    base = PostprocessSettings(WHISPER_MODEL="base")  # type: ignore[call-arg]
    assert (base.offline_model, base.offline_model_fallback) == ("base", None)
    chosen = PostprocessSettings(WHISPER_MODEL="tiny.en", POSTPROCESS_MODEL="tiny.en")  # type: ignore[call-arg]
    assert (chosen.offline_model, chosen.offline_model_fallback) == ("tiny.en", None)
