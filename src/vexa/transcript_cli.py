"""`vexa transcript <platform> <id> [--follow] [--format srt]`: a meeting's transcript in a terminal.

It uses the public API only (``GET /transcripts/...`` and ``WS /ws``), exactly as
the dashboard does, so it works against any Vexa gateway a key is valid for.

Without ``--follow`` it prints the API's own export. With ``--follow`` it prints
each segment once it is committed (drafts are still changing; printing them would
mean printing every line several times), keeps following across dropped
connections, and returns once the meeting has ended and its last drafts settled.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO

import httpx
import websockets

from vexa.db.models import TERMINAL_STATUSES
from vexa.schemas import TranscriptionResponse, TranscriptionSegment
from vexa.transcript_export import (
    VTT_HEADER,
    ExportFormat,
    cues,
    srt_block,
    timeline_origin,
    txt_line,
    vtt_block,
)

FOLLOW_FORMATS = (ExportFormat.txt, ExportFormat.srt, ExportFormat.vtt)
SETTLE_TIMEOUT_S = 60.0  # after the end, how long to wait for the last drafts to be committed
TAIL_SETTLED_S = 15.0  # a session's newest segment is final once others spoke this long after it


class TranscriptError(Exception):
    """A problem worth one line to the user (bad key, unknown meeting, gateway down)."""


def _problem(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if isinstance(detail, list):
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return f"HTTP {response.status_code}: {detail or response.reason_phrase}"


async def fetch(
    client: httpx.AsyncClient, path: str, fmt: ExportFormat, source: str | None = None
) -> httpx.Response:
    """``source="live"``: the transcript made during the meeting, even once the final one is ready."""
    params = {} if fmt is ExportFormat.json else {"format": fmt.value}
    if source:
        params["source"] = source
    try:
        response = await client.get(path, params=params or None)
    except httpx.HTTPError as exc:
        raise TranscriptError(f"cannot reach {client.base_url}: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise TranscriptError(_problem(response))
    return response


class Printer:
    """Prints committed segments once each, in order, as txt lines or srt/vtt cues.

    A committed segment can still be revised while it is the newest of its session
    (the transcriber rewrites the tail of what it heard; the collector may have
    persisted a draft that sat unchanged through a CPU stall). So the newest segment
    of each session is held back until something later exists in that session, or
    until the meeting has ended (``final``).
    """

    def __init__(self, fmt: ExportFormat, out: TextIO) -> None:
        self.fmt, self.out = fmt, out
        self.printed: set[tuple[str, float]] = set()
        self.origin: datetime | None = None
        self.count = 0
        if fmt is ExportFormat.vtt:
            out.write(VTT_HEADER + "\n")

    def add(self, transcript: TranscriptionResponse, final: bool = False) -> None:
        newest: dict[str, float] = {}
        latest_start: datetime | None = None
        for s in transcript.segments:
            uid = s.session_uid or ""
            newest[uid] = max(newest.get(uid, s.start_time), s.start_time)
            if s.absolute_start_time and (latest_start is None or s.absolute_start_time > latest_start):
                latest_start = s.absolute_start_time

        def settled(s: TranscriptionSegment) -> bool:
            if final or s.start_time < newest[s.session_uid or ""]:
                return True
            # A session's newest words are also safe once the meeting has moved well past them.
            return bool(
                s.absolute_end_time
                and latest_start
                and (latest_start - s.absolute_end_time).total_seconds() >= TAIL_SETTLED_S
            )

        fresh = [
            s
            for s in transcript.segments
            if s.text.strip()
            and s.completed is not False
            and (s.session_uid or "", s.start_time) not in self.printed
            and settled(s)
        ]
        if not fresh:
            return
        self.origin = self.origin or timeline_origin(transcript.segments)
        for seg, cue in zip(fresh, cues(fresh, self.origin), strict=True):
            self.printed.add((seg.session_uid or "", seg.start_time))
            self.count += 1
            if self.fmt is ExportFormat.srt:
                self.out.write(srt_block(self.count, cue) + "\n")
            elif self.fmt is ExportFormat.vtt:
                self.out.write(vtt_block(cue) + "\n")
            else:
                self.out.write(txt_line(cue))
        self.out.flush()


async def follow(
    gateway: str,
    api_key: str,
    platform: str,
    native_id: str,
    fmt: ExportFormat,
    out: TextIO = sys.stdout,
    err: Callable[[str], Any] = lambda line: print(line, file=sys.stderr, flush=True),
) -> None:
    """Print committed segments as they come until the meeting ends and settles."""
    path = f"/transcripts/{platform}/{native_id}"
    printer = Printer(fmt, out)
    ws_url = gateway.replace("https://", "wss://", 1).replace("http://", "ws://", 1).rstrip("/") + "/ws"
    subscribe = json.dumps(
        {"action": "subscribe", "meetings": [{"platform": platform, "native_id": native_id}]}
    )
    async with httpx.AsyncClient(base_url=gateway, headers={"X-API-Key": api_key}, timeout=30) as client:

        async def refresh() -> TranscriptionResponse:
            # Following is the live transcript's business: the post-meeting one replaces it later.
            transcript = TranscriptionResponse.model_validate(
                (await fetch(client, path, ExportFormat.json, source="live")).json()
            )
            printer.add(transcript)
            return transcript

        transcript = await refresh()
        status = transcript.status
        delay = 0.5
        while status not in TERMINAL_STATUSES:
            try:
                async with websockets.connect(ws_url, additional_headers={"X-API-Key": api_key}) as ws:
                    await ws.send(subscribe)
                    delay = 0.5
                    async for raw in ws:
                        event = json.loads(raw)
                        kind = event.get("type")
                        if kind == "subscribed":
                            status = (await refresh()).status  # whatever happened before we listened
                        elif kind == "transcript.finalized":
                            await refresh()
                        elif kind == "meeting.status":
                            status = event["payload"]["status"]
                            reason = event["payload"].get("reason")
                            err(f"[status] {status}" + (f" ({reason})" if reason else ""))
                        elif kind == "error":
                            raise TranscriptError(str(event.get("error")))
                        if status in TERMINAL_STATUSES:
                            break
            except (OSError, websockets.ConnectionClosed, websockets.InvalidHandshake) as exc:
                err(f"[live] connection lost ({type(exc).__name__}); reconnecting in {delay:.1f}s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                status = (await refresh()).status
        transcript = await refresh()
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while any(s.completed is False for s in transcript.segments) and time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            transcript = await refresh()
        printer.add(transcript, final=True)


async def print_once(
    gateway: str, api_key: str, platform: str, native_id: str, fmt: ExportFormat, out: TextIO = sys.stdout
) -> None:
    async with httpx.AsyncClient(base_url=gateway, headers={"X-API-Key": api_key}, timeout=30) as client:
        response = await fetch(client, f"/transcripts/{platform}/{native_id}", fmt)
    if fmt is ExportFormat.json:
        out.write(json.dumps(response.json(), indent=2, ensure_ascii=False) + "\n")
    else:
        out.write(response.text)
    out.flush()


async def follow_or_print(
    gateway: str, api_key: str, platform: str, native_id: str, fmt_name: str, keep_following: bool
) -> None:
    """The CLI's entry: ValueError for a format this mode cannot print."""
    fmt = ExportFormat(fmt_name)
    if keep_following:
        if fmt not in FOLLOW_FORMATS:
            raise ValueError(fmt_name)
        await follow(gateway, api_key, platform, native_id, fmt)
    else:
        await print_once(gateway, api_key, platform, native_id, fmt)
