"""The speaker events a bot records beside a mixed track, read back on the recording's timeline.

Both storage backends (S3: a moto STAND-IN server process); audio and events go through
the bot's own recorder, and are read back by the code the post-processor uses.
"""

from __future__ import annotations

import numpy as np
from recording_helpers import record_mixed, tone

from vexa.collector.speakers import parse_events
from vexa.recordings.finalize import load_tracks
from vexa.recordings.storage import RecordingStorage


async def test_speaker_events_are_written_with_the_chunks_and_read_on_the_recording_timeline(
    storage: RecordingStorage,
) -> None:
    audio = np.concatenate([tone(3.0, 440), tone(3.0, 550), tone(1.0, 660)])
    turns = [("Alice", 0.25, 2.9), ("Bob", 3.05, 6.0), ("Alice", 6.1, 7.0)]
    await record_mixed(storage, "5/77", audio, turns)

    logs = await storage.list("5/77/speakers")
    assert len(logs) >= 3, "written as the chunks are cut, not kept to the end in the bot's memory"
    started_at, tracks = await load_tracks(storage, "5/77")
    (mixed,) = tracks
    assert mixed.name is None and started_at == 1_700_000_000.0
    events = parse_events(mixed.speaker_log)
    expected = sorted(
        [(start * 1000, "SPEAKER_START", name) for name, start, _ in turns]
        + [(end * 1000, "SPEAKER_END", name) for name, _, end in turns]
    )
    got = sorted((e.ms, e.kind, e.name) for e in events)
    assert [(k, n) for _, k, n in got] == [(k, n) for _, k, n in expected]
    assert all(abs(a[0] - b[0]) < 1.0 for a, b in zip(got, expected, strict=True)), got
    assert {e.key for e in events} == {"id-Alice", "id-Bob"}, "participant ids kept (names may repeat)"


async def test_a_torn_speaker_log_is_skipped_not_fatal(storage: RecordingStorage) -> None:
    await record_mixed(storage, "5/78", tone(2.5, 440), [("Alice", 0.0, 2.4)])
    await storage.put("5/78/speakers/000099.json", b'[{"event_type": "SPEAKER_ST')  # killed mid-write
    _, (mixed,) = await load_tracks(storage, "5/78")
    assert [e.kind for e in parse_events(mixed.speaker_log)] == ["SPEAKER_START", "SPEAKER_END"]
