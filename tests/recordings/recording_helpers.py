"""Helpers for the recordings tests: a meeting with a recording record, audio written the bot's way."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np

from vexa.bot.recorder import MeetingRecorder
from vexa.db import Database
from vexa.recordings.audio import SR
from vexa.recordings.records import new_recording
from vexa.recordings.storage import RecordingStorage

FRAME = SR // 10  # the page sends 100 ms frames


async def insert_meeting(
    db: Database, user_id: int, native: str, status: str = "completed"
) -> tuple[int, dict]:
    """A finished meeting whose bot recorded (the record the bot-manager creates)."""
    async with db.engine.begin() as conn:
        meeting_id = (
            await conn.exec_driver_sql(
                "INSERT INTO meetings (user_id, platform, platform_specific_id, status) "
                "VALUES ($1, 'google_meet', $2, $3) RETURNING id",
                (user_id, native, status),
            )
        ).scalar_one()
        record = new_recording(meeting_id)
        await conn.exec_driver_sql(
            "UPDATE meetings SET data = $1::jsonb WHERE id = $2",
            (json.dumps({"recordings": [record], "language": "en"}), meeting_id),
        )
    return meeting_id, record


async def record(storage: RecordingStorage, prefix: str, tracks: dict[str, tuple[float, np.ndarray]]) -> None:
    """Feed each participant's audio (starting ``t`` s into the meeting) through the bot's recorder."""
    recorder = MeetingRecorder(storage, prefix, chunk_s=2.0)
    recorder.start()
    t0 = 1_700_000_000.0
    frames: list[tuple[float, str, np.ndarray]] = []
    for name, (start_s, audio) in tracks.items():
        for i in range(0, len(audio), FRAME):
            frame = audio[i : i + FRAME]
            frames.append((t0 + start_s + (i + len(frame)) / SR, name, frame))
    for end_wall, name, frame in sorted(frames, key=lambda f: f[0]):
        recorder.push(f"p:{name}", name, f"id-{name}", frame.astype("<f4").tobytes(), end_wall)
        await asyncio.sleep(0)
    await recorder.close()


def tone(seconds: float, hz: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def media(rec: dict[str, Any], track: str) -> dict[str, Any]:
    return next(m for m in rec["media_files"] if m["metadata"]["track"] == track)


async def record_mixed(
    storage: RecordingStorage,
    prefix: str,
    audio: np.ndarray,
    turns: list[tuple[str, float, float]],
) -> None:
    """One mixed stream (Teams, Zoom web) through the bot's recorder, with the page's speaker events.

    ``turns`` are ``(name, start s, end s)`` on the stream's timeline; each becomes a
    SPEAKER_START and a SPEAKER_END, interleaved with the audio in time order as the page sends them.
    """
    recorder = MeetingRecorder(storage, prefix, chunk_s=2.0)
    recorder.start()
    t0 = 1_700_000_000.0
    events = sorted(
        [(t0 + start, "SPEAKER_START", name) for name, start, _ in turns]
        + [(t0 + end, "SPEAKER_END", name) for name, _, end in turns]
    )
    for i in range(0, len(audio), FRAME):
        frame = audio[i : i + FRAME]
        end_wall = t0 + (i + len(frame)) / SR
        while events and events[0][0] <= end_wall:
            wall, kind, name = events.pop(0)
            recorder.speaker(kind, name, f"id-{name}", wall)
        recorder.push("mixed", None, None, frame.astype("<f4").tobytes(), end_wall)
        await asyncio.sleep(0)
    for wall, kind, name in events:
        recorder.speaker(kind, name, f"id-{name}", wall)
    await recorder.close()
