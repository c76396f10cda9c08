"""`vexa transcript --follow`'s printer: each committed line once, never one that can still change.

The command itself runs against the real stack in tests/ui (following a live meeting
and printing a finished one); this covers the hold-back rules with exact timings.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from vexa.schemas import TranscriptionResponse, TranscriptionSegment
from vexa.transcript_cli import Printer
from vexa.transcript_export import ExportFormat

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def seg(session: str, start: float, end: float, text: str, speaker: str, completed: bool = True):
    origin = T0 if session == "alice" else T0 + timedelta(seconds=2)
    return TranscriptionSegment(
        start=start,
        end=end,
        text=text,
        speaker=speaker,
        completed=completed,
        session_uid=session,
        absolute_start_time=origin + timedelta(seconds=start),
        absolute_end_time=origin + timedelta(seconds=end),
    )


def transcript(*segments: TranscriptionSegment) -> TranscriptionResponse:
    return TranscriptionResponse(
        id=1,
        platform="google_meet",
        native_meeting_id="abc-defg-hij",
        status="active",
        segments=list(segments),
    )


def test_newest_line_of_each_speaker_waits_until_it_cannot_change():
    out = io.StringIO()
    printer = Printer(ExportFormat.txt, out)
    first = seg("alice", 0.0, 2.0, "Good morning, am.", "Alice")
    printer.add(transcript(first, seg("bob", 1.0, 3.0, "Thanks", "Bob", completed=False)))
    assert out.getvalue() == ""  # Alice's only line is still her newest: it may be revised

    revised = seg("alice", 0.0, 4.0, "Good morning everyone.", "Alice")
    printer.add(transcript(revised, seg("alice", 5.0, 7.0, "The budget is fine.", "Alice")))
    assert out.getvalue() == "[00:00:00] Alice: Good morning everyone.\n"

    # Bob speaks 15 s after Alice's last words: hers are final, his newest still waits.
    bob = seg("bob", 20.0, 22.0, "Agreed.", "Bob")
    printer.add(transcript(revised, seg("alice", 5.0, 7.0, "The budget is fine.", "Alice"), bob))
    assert out.getvalue().splitlines() == [
        "[00:00:00] Alice: Good morning everyone.",
        "[00:00:05] Alice: The budget is fine.",
    ]
    # The meeting ended and settled: the rest, once.
    final = transcript(revised, seg("alice", 5.0, 7.0, "The budget is fine.", "Alice"), bob)
    printer.add(final, final=True)
    printer.add(final, final=True)
    assert out.getvalue().splitlines()[-1] == "[00:00:22] Bob: Agreed."
    assert len(out.getvalue().splitlines()) == 3


def test_srt_numbering_and_vtt_header_carry_across_batches():
    srt, vtt = io.StringIO(), io.StringIO()
    lines = [seg("alice", 0.0, 2.0, "One.", "Alice"), seg("alice", 3.0, 4.5, "Two <b>.", "Alice")]
    for fmt, out in ((ExportFormat.srt, srt), (ExportFormat.vtt, vtt)):
        printer = Printer(fmt, out)
        printer.add(transcript(lines[0]), final=True)
        printer.add(transcript(*lines), final=True)
    assert srt.getvalue() == (
        "1\n00:00:00,000 --> 00:00:02,000\nAlice: One.\n\n"
        "2\n00:00:03,000 --> 00:00:04,500\nAlice: Two <b>.\n\n"
    )
    assert vtt.getvalue().startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n<v Alice>One.\n")
    assert "<v Alice>Two &lt;b&gt;.\n" in vtt.getvalue()
