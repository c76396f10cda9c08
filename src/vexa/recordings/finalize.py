"""Chunks -> one FLAC per participant plus the mix, and the media-file records that name them.

Runs after the meeting (or after the bot died): everything it needs is in storage
(``tracks.json`` and the chunk names), so a killed bot's recording is finalized
just like a clean one, up to its last written chunk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from vexa.recordings.audio import SR, decode, encode_flac, mix, place
from vexa.recordings.records import new_id
from vexa.recordings.speaker_log import load_speaker_log
from vexa.recordings.storage import RecordingStorage, StorageError

log = logging.getLogger(__name__)

_CHUNK = re.compile(r"/chunks/(t\d+)/(\d+)_(\d+)\.flac$")
PARTIAL_DIR = "partial"  # <prefix>/partial/master.flac: the mix so far, while the meeting runs


@dataclass
class Track:
    track_id: str
    name: str | None
    participant_id: str | None
    audio: np.ndarray  # on the recording's timeline, from its sample 0
    # An unattributed (mixed) track's speaker events: (event JSON, ms on the recording's timeline).
    speaker_log: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Finalized:
    started_at: float | None
    tracks: list[Track]
    media_files: list[dict[str, Any]]


async def load_tracks(storage: RecordingStorage, prefix: str) -> tuple[float | None, list[Track]]:
    """Every track of a recording, placed on the recording's timeline."""
    try:
        manifest = json.loads(await storage.get(f"{prefix}/tracks.json"))
    except (StorageError, ValueError):
        manifest = {"tracks": {}}
    chunks: dict[str, list[tuple[int, str]]] = {}
    for key in await storage.list(f"{prefix}/chunks"):
        m = _CHUNK.search(key)
        if m:
            chunks.setdefault(m.group(1), []).append((int(m.group(3)), key))
    tracks = []
    for track_id in sorted(chunks, key=lambda t: int(t[1:])):
        placed = []
        for offset_ms, key in chunks[track_id]:
            data = await storage.get(key)
            try:
                placed.append((offset_ms, await asyncio.to_thread(decode, data)))
            except Exception as exc:  # a torn chunk (killed mid-write on a store without atomic puts)
                log.warning("recording %s: skipping unreadable chunk %s: %s", prefix, key, exc)
        info = manifest.get("tracks", {}).get(track_id, {})
        audio = await asyncio.to_thread(place, placed)
        tracks.append(Track(track_id, info.get("name"), info.get("participant_id"), audio))
    started_at = manifest.get("started_at")
    if any(t.name is None for t in tracks):
        events = await load_speaker_log(storage, prefix, started_at)
        for track in tracks:
            if track.name is None:
                track.speaker_log = events
    return started_at, tracks


async def assemble_partial_master(storage: RecordingStorage, prefix: str) -> tuple[str, float] | None:
    """The mix of every chunk written so far, stored as ``<prefix>/partial/master.flac``.

    Upstream assembles its master on read, so a player can open a meeting that is still
    running; this does the same from the chunks (each a complete FLAC), once per call.
    Returns (key, seconds), or None when nothing was recorded yet.
    """
    _, tracks = await load_tracks(storage, prefix)
    if not tracks:
        return None
    audio = await asyncio.to_thread(mix, [t.audio for t in tracks])
    key = f"{prefix}/{PARTIAL_DIR}/master.flac"
    await storage.put(key, await asyncio.to_thread(encode_flac, audio))
    return key, round(len(audio) / SR, 3)


async def finalize(storage: RecordingStorage, prefix: str) -> Finalized:
    """Write ``<prefix>/<track>.flac`` per track and ``<prefix>/mixed.flac``; return their records."""
    started_at, tracks = await load_tracks(storage, prefix)
    files: list[dict[str, Any]] = []
    if not tracks:
        return Finalized(started_at, [], [])
    outputs: list[tuple[str, np.ndarray, dict[str, Any]]] = [
        ("mixed", await asyncio.to_thread(mix, [t.audio for t in tracks]), {"track": "mixed"})
    ]
    for track in tracks:
        if track.name is not None:  # the capture's unattributed stream is in the mix only
            meta = {
                "track": track.track_id,
                "participant": track.name,
                "participant_id": track.participant_id,
            }
            outputs.append((track.track_id, track.audio, meta))
    now = datetime.now(UTC).isoformat()
    for name, audio, meta in outputs:
        data = await asyncio.to_thread(encode_flac, audio)
        key = f"{prefix}/{name}.flac"
        await storage.put(key, data)
        files.append(
            {
                "id": new_id(),
                "type": "audio",
                "format": "flac",
                "storage_path": key,
                "storage_backend": storage.backend,
                "file_size_bytes": len(data),
                "duration_seconds": round(len(audio) / SR, 3),
                "metadata": {**meta, "sample_rate": SR, "started_at": started_at},
                "created_at": now,
            }
        )
    await storage.delete_prefix(f"{prefix}/{PARTIAL_DIR}")  # superseded by mixed.flac
    return Finalized(started_at, tracks, files)
