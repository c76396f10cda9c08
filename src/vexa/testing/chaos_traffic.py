"""The soak's traffic: transcription sessions with a known script, and the ground truth they leave.

Each session publishes what the transcription service publishes, through the
real ``StreamPublisher`` (ordered, buffered across Redis outages): a
``session_start``, then segments revised several times as drafts and finally
completed, with speaker events between, then a ``session_end``. Every segment's
last sent text is recorded; at the end the transcripts must equal that exactly.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vexa.streams import (
    Segment,
    SessionEndMessage,
    SessionStartMessage,
    SpeakerEvent,
    TranscriptionMessage,
)
from vexa.transcription.publisher import StreamPublisher

SEGMENT_STREAM = "transcription_segments"
SPEAKER_STREAM = "speaker_events_relative"
SEGMENT_SPACING_S = 3.0

_VOCABULARY = (
    "budget review quarterly plan roadmap hiring launch customers pricing design metrics",
    "release schedule feedback support contract partners travel security migration",
)
_WORDS = tuple(" ".join(_VOCABULARY).split())


@dataclass(frozen=True, slots=True)
class MeetingTarget:
    """Where a session's messages go: the meeting row and the user's key."""

    meeting_id: int
    platform: str
    native_id: str
    token: str


@dataclass
class GroundTruth:
    """meeting id -> (session uid, start) -> the last text sent for that segment."""

    final: dict[int, dict[tuple[str, float], str]] = field(default_factory=dict)
    messages: int = 0

    def record(self, meeting_id: int, uid: str, start: float, text: str) -> None:
        self.final.setdefault(meeting_id, {})[(uid, round(start, 3))] = text

    @property
    def segments(self) -> int:
        return sum(len(m) for m in self.final.values())


def sentence(rng: random.Random, uid: str, k: int, draft: int | None) -> str:
    """A plausible sentence (it must pass the hallucination filters), unique per segment and version."""
    words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 7)))
    tag = "final" if draft is None else f"draft {draft}"
    return f"Speaker {uid} point {k} about {words}, {tag}."


class Session:
    """One scripted transcription session publishing at a meeting's pace until told to stop."""

    def __init__(
        self,
        uid: str,
        target: MeetingTarget,
        publisher: StreamPublisher,
        truth: GroundTruth,
        *,
        drafts: int,
        interval_s: float,
        bind_by_id: bool,
        seed: int,
    ) -> None:
        self.uid, self.target, self.publisher, self.truth = uid, target, publisher, truth
        self.drafts, self.interval_s, self.bind_by_id = drafts, interval_s, bind_by_id
        self.rng = random.Random(seed)
        self.segments_done = 0

    def _context(self) -> dict[str, object]:
        return {
            "uid": self.uid,
            "platform": self.target.platform,
            "meeting_id": self.target.native_id,
            "token": self.target.token,
            "meeting_db_id": self.target.meeting_id if self.bind_by_id else None,
        }

    def _send(self, message: object) -> None:
        self.publisher.publish(SEGMENT_STREAM, message)  # type: ignore[arg-type]
        self.truth.messages += 1

    def _speaker(self, kind: str, at_s: float) -> None:
        event = SpeakerEvent(
            uid=self.uid,
            event_type=kind,  # type: ignore[arg-type]
            participant_name=f"Person {self.uid}",
            relative_timestamp_ms=at_s * 1000,
        )
        self.publisher.publish(SPEAKER_STREAM, event)

    def start(self) -> None:
        self._send(SessionStartMessage(**self._context(), start_timestamp=datetime.now(UTC)))  # type: ignore[arg-type]

    def segment(self, k: int) -> list[TranscriptionMessage]:
        """Drafts, then the completed version, of segment ``k`` (the previous one repeated, as WhisperLive
        does)."""
        start = k * SEGMENT_SPACING_S
        out = []
        previous = None
        if k > 0:
            prev_text = self.truth.final[self.target.meeting_id][
                (self.uid, round(start - SEGMENT_SPACING_S, 3))
            ]
            previous = Segment(
                start=start - SEGMENT_SPACING_S, end=start - 0.5, text=prev_text, completed=True
            )
        for version in [*range(self.drafts), None]:
            text = sentence(self.rng, self.uid, k, version)
            current = Segment(start=start, end=start + 2.0, text=text, completed=version is None)
            segments = [current] if previous is None else [previous, current]
            out.append(TranscriptionMessage(**self._context(), segments=segments))  # type: ignore[arg-type]
            self.truth.record(self.target.meeting_id, self.uid, start, text)
        return out

    async def run(self, stop: asyncio.Event) -> None:
        """Segments at the meeting's pace until ``stop``; the segment under way is always finished."""
        self.start()
        k = 0
        while not stop.is_set():
            self._speaker("SPEAKER_START", k * SEGMENT_SPACING_S)
            for message in self.segment(k):
                self._send(message)
                await asyncio.sleep(self.interval_s * self.rng.uniform(0.5, 1.5))
            self._speaker("SPEAKER_END", k * SEGMENT_SPACING_S + 2.0)
            k += 1
            self.segments_done = k
        self._send(SessionEndMessage(**self._context(), end_timestamp=datetime.now(UTC)))  # type: ignore[arg-type]

    def burst(self, segments: int) -> None:
        """A backlog at once (no pacing): what a busy service publishes while no collector reads."""
        self.start()
        for k in range(segments):
            for message in self.segment(k):
                self._send(message)
        self._send(SessionEndMessage(**self._context(), end_timestamp=datetime.now(UTC)))  # type: ignore[arg-type]
