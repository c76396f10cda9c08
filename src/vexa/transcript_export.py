"""Transcript exports: plain text, SubRip, WebVTT and Markdown from the public transcript.

One renderer serves the API (``GET /transcripts/...?format=srt``), the dashboard's
download buttons (which call that API) and ``vexa transcript --format``, so every
export of a meeting says the same thing.

Cue times are seconds since the meeting's first spoken segment, taken from the
segments' absolute times: a meeting the bot joined twice has two sessions whose
relative times both start near zero, and only the absolute times put them in
order. Segments arrive sorted, so the cue starts never go back in time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from vexa.schemas import TranscriptionResponse, TranscriptionSegment


class ExportFormat(enum.StrEnum):
    json = "json"
    txt = "txt"
    srt = "srt"
    vtt = "vtt"
    md = "md"


MEDIA_TYPES: dict[ExportFormat, str] = {
    ExportFormat.json: "application/json",
    ExportFormat.txt: "text/plain; charset=utf-8",
    ExportFormat.srt: "application/x-subrip; charset=utf-8",
    ExportFormat.vtt: "text/vtt; charset=utf-8",
    ExportFormat.md: "text/markdown; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Cue:
    """One exported line: seconds from the start of the meeting, who, what."""

    start: float
    end: float
    speaker: str | None
    text: str


def timeline_origin(segments: list[TranscriptionSegment]) -> datetime | None:
    """The first absolute start, when every spoken segment has one (else relative times are used)."""
    spoken = [s.absolute_start_time for s in segments if s.text.strip()]
    if not spoken or any(t is None for t in spoken):
        return None
    return min(t for t in spoken if t is not None)


def cues(segments: list[TranscriptionSegment], origin: datetime | None = None) -> list[Cue]:
    """Non-empty segments on one timeline (see the module docstring); ends never precede starts.

    ``origin`` fixes time zero (a follower printing cues as they arrive keeps the first one's).
    """
    spoken = [s for s in segments if s.text.strip()]
    origin = origin or timeline_origin(spoken)
    out: list[Cue] = []
    for seg in spoken:
        if origin is not None and seg.absolute_start_time is not None:
            start = max(0.0, (seg.absolute_start_time - origin).total_seconds())
        else:
            start = seg.start_time
        end = start + max(0.0, seg.end_time - seg.start_time)
        out.append(Cue(round(start, 3), round(end, 3), seg.speaker, " ".join(seg.text.split())))
    return out


def clock(seconds: float, separator: str = ".") -> str:
    """``HH:MM:SS.mmm`` (WebVTT) or ``HH:MM:SS,mmm`` (SubRip)."""
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _short_clock(seconds: float) -> str:
    return clock(seconds).split(".")[0]


def _title(transcript: TranscriptionResponse) -> str:
    name = (transcript.data or {}).get("name")
    where = f"{transcript.platform.value} {transcript.native_meeting_id or transcript.id}"
    return f"{name} ({where})" if isinstance(name, str) and name.strip() else where


def txt_line(c: Cue) -> str:
    return f"[{_short_clock(c.start)}] {c.speaker or 'Unknown'}: {c.text}\n"


def srt_block(n: int, c: Cue) -> str:
    who = f"{c.speaker}: " if c.speaker else ""
    return f"{n}\n{clock(c.start, ',')} --> {clock(c.end, ',')}\n{who}{c.text}\n"


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


VTT_HEADER = "WEBVTT\n"


def vtt_block(c: Cue) -> str:
    """Speakers as voice spans (``<v Alice>``), which players show as the speaker's name."""
    text = _vtt_escape(c.text)
    if c.speaker:
        text = f"<v {_vtt_escape(c.speaker)}>{text}"
    return f"{clock(c.start)} --> {clock(c.end)}\n{text}\n"


def to_txt(transcript: TranscriptionResponse) -> str:
    return "".join(txt_line(c) for c in cues(transcript.segments))


def to_srt(transcript: TranscriptionResponse) -> str:
    return "\n".join(srt_block(n, c) for n, c in enumerate(cues(transcript.segments), start=1))


def to_vtt(transcript: TranscriptionResponse) -> str:
    return "\n".join([VTT_HEADER, *(vtt_block(c) for c in cues(transcript.segments))])


def _md_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "\\`*_[]<>#|" else ch for ch in text)


def to_md(transcript: TranscriptionResponse) -> str:
    lines = [f"# {_md_escape(_title(transcript))}", ""]
    facts = [("Status", transcript.status)]
    if transcript.start_time:
        facts.append(("Started", transcript.start_time.isoformat(timespec="seconds")))
    if transcript.end_time:
        facts.append(("Ended", transcript.end_time.isoformat(timespec="seconds")))
    notes = (transcript.data or {}).get("notes")
    lines += [f"- **{k}:** {_md_escape(v)}" for k, v in facts]
    if isinstance(notes, str) and notes.strip():
        lines += ["", "## Notes", "", _md_escape(notes.strip())]
    lines += ["", "## Transcript", ""]
    for c in cues(transcript.segments):
        who = _md_escape(c.speaker or "Unknown")
        lines.append(f"**{who}** `{_short_clock(c.start)}`: {_md_escape(c.text)}  ")
    return "\n".join(lines).rstrip() + "\n"


RENDERERS = {
    ExportFormat.txt: to_txt,
    ExportFormat.srt: to_srt,
    ExportFormat.vtt: to_vtt,
    ExportFormat.md: to_md,
}


def render(transcript: TranscriptionResponse, fmt: ExportFormat) -> str:
    """The export as text (JSON is the API's own response, not rendered here)."""
    return RENDERERS[fmt](transcript)


def filename(transcript: TranscriptionResponse, fmt: ExportFormat) -> str:
    """A safe download name: platform, native id (or database id) and the format's extension."""
    native = transcript.native_meeting_id or f"meeting-{transcript.id}"
    return f"{transcript.platform.value}-{native}.{fmt.value}"
