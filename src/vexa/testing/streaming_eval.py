"""Stream a prepared meeting into a WhisperLive-protocol server and measure what comes back.

Used by the transcription tests and by ``bench/transcription.py`` for both our
service and upstream WhisperLive (the same client, the same audio, the same
pacing), so their figures are comparable. The client speaks the protocol
itself: a JSON config, float32 16 kHz frames, ``END_OF_AUDIO``.

What is measured, per utterance (speech followed by a pause of at least
``MIN_PAUSE_S``), from the wall time its last sample was sent:
- *committed*: the first message with a completed segment covering its end;
- *first shown*: the first message with any segment covering its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import connect

from vexa.tasks import cancel_and_wait
from vexa.testing.real_speech import SR, Meeting
from vexa.transcription.wer import normalize

MIN_PAUSE_S = 0.5  # shorter pauses are inside an utterance: nothing can be committed there
END_SLACK_S = 0.8  # a segment "covers" an utterance's end if it ends no earlier than this before it


@dataclass
class Arrival:
    wall: float
    segments: list[dict[str, Any]]


@dataclass
class StreamRun:
    meeting: Meeting
    sent_end_wall: dict[int, float] = field(default_factory=dict)  # utterance index -> wall time
    arrivals: list[Arrival] = field(default_factory=list)
    languages: list[dict[str, Any]] = field(default_factory=list)
    stopped_sending_wall: float | None = None
    closed_wall: float | None = None

    # ---- what came back ------------------------------------------------------------------
    def final_segments(self) -> list[dict[str, Any]]:
        """The latest version of every segment, keyed by start, in time order."""
        latest: dict[float, dict[str, Any]] = {}
        for a in self.arrivals:
            for s in a.segments:
                latest[round(float(s["start"]), 2)] = s
        return [latest[k] for k in sorted(latest)]

    def committed_text(self) -> str:
        return " ".join(str(s["text"]).strip() for s in self.final_segments() if s.get("completed"))

    def committed_segments(self) -> list[str]:
        return [str(s["text"]).strip() for s in self.final_segments() if s.get("completed") and s["text"]]

    def _first(self, k: int, *, completed: bool) -> float | None:
        _, end, _ = self.meeting.utterances[k]
        for a in self.arrivals:
            for s in a.segments:
                if completed and not s.get("completed"):
                    continue
                if not str(s.get("text", "")).strip():
                    continue
                if float(s["start"]) <= end and float(s["end"]) >= end - END_SLACK_S:
                    return a.wall
        return None

    def latencies(self, *, completed: bool) -> list[float | None]:
        """Per utterance ending in a pause: seconds from its last sample sent to its end appearing."""
        out: list[float | None] = []
        for k, pause in enumerate(self.meeting.pauses_after):
            sent = self.sent_end_wall.get(k)
            if pause < MIN_PAUSE_S or sent is None:
                continue
            at = self._first(k, completed=completed)
            out.append(None if at is None else at - sent)
        return out


async def stream_meeting(
    url: str,
    meeting: Meeting,
    config: dict[str, Any],
    *,
    chunk_s: float = 0.1,
    speed: float = 1.0,
    stop_after_speech: bool = False,
    hold_s: float = 4.0,
    drain_s: float = 120.0,
    quiet_s: float = 8.0,
) -> StreamRun:
    """Send ``meeting`` paced at ``speed`` x real time and record every answer.

    ``stop_after_speech``: the client sends nothing after the last utterance's speech
    (a participant who goes quiet, a throttled tab) and waits ``hold_s`` before
    ``END_OF_AUDIO``; otherwise the trailing silence is sent too.
    """
    run = StreamRun(meeting)
    audio = meeting.audio
    if stop_after_speech:
        audio = audio[: int(np.ceil(meeting.utterances[-1][1] * SR))]
    async with connect(url, open_timeout=30, max_size=2**24, ping_interval=None) as ws:
        await ws.send(json.dumps(config))
        while True:
            first = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if first.get("message") == "SERVER_READY":
                break
            if first.get("status") in ("ERROR", "WAIT"):
                raise RuntimeError(f"server refused the session: {first}")

        async def reader() -> None:
            with contextlib.suppress(Exception):
                async for raw in ws:
                    msg = json.loads(raw)
                    if "segments" in msg:
                        run.arrivals.append(Arrival(time.time(), msg["segments"]))
                    elif "language" in msg:
                        run.languages.append(msg)

        task = asyncio.create_task(reader())
        step = int(chunk_s * SR)
        ends = [(k, int(np.ceil(e * SR))) for k, (_, e, _) in enumerate(meeting.utterances)]
        started = time.monotonic()
        for i in range(0, len(audio), step):
            await ws.send(audio[i : i + step].astype("<f4").tobytes())
            now = time.time()
            while ends and ends[0][1] <= i + step:
                run.sent_end_wall[ends.pop(0)[0]] = now
            delay = started + (i + step) / SR / speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        run.stopped_sending_wall = time.time()
        if stop_after_speech:
            await asyncio.sleep(hold_s)
        await ws.send(b"END_OF_AUDIO")
        run.closed_wall = time.time()
        # Our server closes the connection once everything is decoded; WhisperLive keeps it
        # open, so for it the answer is complete once it has been quiet for a while.
        quiet = asyncio.create_task(_quiet(run, quiet_s))
        await asyncio.wait([task, quiet], timeout=drain_s, return_when="FIRST_COMPLETED")
        quiet.cancel()
        await ws.close()
        await cancel_and_wait(task)
    return run


async def _quiet(run: StreamRun, seconds: float) -> None:
    """Wait until no message has arrived for ``seconds`` (the server has said everything)."""
    while True:
        last = run.arrivals[-1].wall if run.arrivals else run.closed_wall or time.time()
        if time.time() - last >= seconds:
            return
        await asyncio.sleep(0.2)


# ---- word alignment --------------------------------------------------------------------


def align(reference: list[str], hypothesis: list[str]) -> list[tuple[str, int | None, int | None]]:
    """Levenshtein alignment: ("ok"|"sub"|"del"|"ins", ref index, hyp index) in order."""
    n, m = len(reference), len(hypothesis)
    cost = np.zeros((n + 1, m + 1), dtype=np.int32)
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(
                cost[i - 1, j] + 1,
                cost[i, j - 1] + 1,
                cost[i - 1, j - 1] + (reference[i - 1] != hypothesis[j - 1]),
            )
    ops: list[tuple[str, int | None, int | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i, j] == cost[i - 1, j - 1] + (reference[i - 1] != hypothesis[j - 1]):
            ops.append(("ok" if reference[i - 1] == hypothesis[j - 1] else "sub", i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i > 0 and cost[i, j] == cost[i - 1, j] + 1:
            ops.append(("del", i - 1, None))
            i -= 1
        else:
            ops.append(("ins", None, j - 1))
            j -= 1
    return ops[::-1]


def boundary_deletions(reference_text: str, segments: list[str], reach: int = 2) -> list[str]:
    """Reference words missing from the streamed transcript next to one of its segment boundaries.

    The transcript is the segments joined; a deleted reference word counts when it falls
    within ``reach`` words of a point where one segment ends and the next begins (or the
    transcript's start/end) — the places where a streaming policy drops words.
    """
    ref = normalize(reference_text)
    hyp: list[str] = []
    boundaries = {0}
    for seg in segments:
        hyp += normalize(seg)
        boundaries.add(len(hyp))
    missing = []
    for op, ri, hj in _with_hyp_positions(align(ref, hyp)):
        if op == "del" and any(abs(hj - b) <= reach for b in boundaries):
            missing.append(ref[ri])
    return missing


def _with_hyp_positions(ops: list[tuple[str, int | None, int | None]]):  # type: ignore[no-untyped-def]
    """Each op with the hypothesis position it sits at (deletions sit between hyp words)."""
    pos = 0
    for op, ri, hj in ops:
        if hj is not None:
            pos = hj + 1
        yield op, ri, (hj if hj is not None else pos)
