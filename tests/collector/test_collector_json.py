"""The consumer's hand-rolled JSON (orjson over the model's fields) is pydantic's, byte for byte.

``StoredSegment.dump`` and ``public_json`` replace ``model_dump_json`` and
``to_public().model_dump_json()`` on the hot path; what clients receive must not change.
"""

from __future__ import annotations

import json
import random
import string
from datetime import UTC, datetime, timedelta, timezone

from vexa.collector.segments import StoredSegment

_CHARS = string.printable + '\u00e9\u2028\u2029\x01\x1f\x7f\U0001f600"\\/<>&'
_FLOATS = [0.0, -0.0, 1.0, 2.5, 1e9, 1e-7, 5e-324, 123456.789, 1 / 3, 3.0000000000000004]


def _segment(rnd: random.Random) -> StoredSegment:
    def text() -> str:
        return "".join(rnd.choice(_CHARS) for _ in range(rnd.randint(0, 30)))

    def number() -> float:
        return rnd.choice([*_FLOATS, rnd.random() * 1e4])

    tz = rnd.choice([UTC, timezone(timedelta(0)), timezone(timedelta(hours=2)), None])
    words = [(number(), number(), text()) for _ in range(rnd.randint(0, 3))] if rnd.random() < 0.5 else None
    return StoredSegment(
        start=number(),
        end_time=number(),
        text=text(),
        language=rnd.choice([None, "en", text()]),
        speaker=rnd.choice([None, text()]),
        speaker_mapping_status=rnd.choice([None, "MAPPED", "UNKNOWN"]),
        speaker_confidence=rnd.choice([None, number()]),
        words=words,
        completed=rnd.random() < 0.5,
        session_uid=text() or "s",
        updated_at=datetime(2026, 11, 28, 9, rnd.randint(0, 59), 7, rnd.choice([0, 1, 123000, 999999]), tz),
        speaker_explicit=rnd.random() < 0.5,
        version=f"{rnd.randint(0, 2**41)}-{rnd.randint(0, 9)}",
    )


def test_dump_and_public_json_match_pydantic_byte_for_byte() -> None:
    rnd = random.Random(11)
    for _ in range(3000):
        seg = _segment(rnd)
        assert seg.dump_bytes() == seg.model_dump_json().encode()
        start = rnd.choice([None, datetime(2026, 11, 28, 9, 0, 0, rnd.randint(0, 999999), UTC)])
        assert seg.public_json(start) == seg.to_public(start).model_dump_json()
        finalized = seg.model_copy(update={"completed": True}).to_public(start).model_dump_json()
        assert seg.public_json(start, completed=True) == finalized
        # it reads back
        assert StoredSegment.model_validate_json(seg.dump_bytes()).dump_bytes() == seg.dump_bytes()
        json.loads(seg.public_json(start))
