"""Who said each word: word-level speaker attribution per platform path, on simulated meetings.

Each meeting is planned by the simulator's own planner (``vexa.testing.sim_plan``):
turns taken round-robin, overlapping for the given share of the speech time, and the
active-speaker indicator as the SIMULATED Teams/Zoom pages show it (0.3 s late, each
switch jittered by up to 0.1 s, dropping out in pauses and at random). Participant 1
reads real LibriVox speech (Debian's pocketsphinx-testdata); the others are espeak-ng
voices reading other sentences.

- **Meet (per participant)**: each participant's own track is its own session of the
  real transcription service (as the bot does where the page gives per-participant
  elements); the speaker comes with the audio.
- **Teams / Zoom web (mixed)**: the mix of everyone is one session; the indicator's
  changes become speaker events dated back by the bot's lag compensation
  (``BOT_SPEAKER_LAG_MS``), and the collector's word attribution
  (``vexa.collector.attribution``, unknown below ``SPEAKER_MIN_CONFIDENCE``) names each
  word's speaker and splits segments at speaker changes. The two platforms' pages are
  simulated alike, so one row group stands for both.

Audio goes to a real transcription service (``--model``) over its WebSocket at
``--speed`` x real time. A word counts as correctly attributed when the named speaker
said it: of the people voiced within 1 s of it, the one whose line has that word (in
crosstalk the words decide, not the time; a word in nobody's line falls back to who was
voiced then, 0.15 s tolerance). *Unknown* words count as not correct. WER is against
the turns' reference text in turn order (in crosstalk the transcript interleaves, so it
counts order too); cpWER is per speaker (their lines against the words attributed to
them; a word given to the wrong speaker counts twice). The full-stack path through
Chromium and the bot is covered by the tests
(tests/bot/test_bot_mixed_audio.py, tests/e2e/test_e2e_speakers.py).

    .venv/bin/python bench/speakers.py                 # reduced grid (see --full)
    .venv/bin/python bench/speakers.py --full --runs 2 # 2/4/6 participants x 0/10/30 % overlap, all paths
    .venv/bin/python bench/speakers.py --lag 0.6       # the real lag differs from the compensated one
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transcription import start_ours  # bench/transcription.py: our service as a process
from vexa.collector.attribution import WordTiming, attribute_segment
from vexa.collector.speakers import TimedEvent
from vexa.testing.real_speech import SR, Meeting, librivox
from vexa.testing.sim_plan import Person, Plan, PlanOptions, plan
from vexa.testing.speech import read_wav, resample, synthesize, write_wav
from vexa.testing.streaming_eval import stream_meeting
from vexa.transcription.wer import normalize, wer

VOICES = ["en-us", "en-us+m3", "en-us+f3", "en-gb", "en-us+f2", "en-gb+m5", "en-us+m7"]
SENTENCES = [
    "The quarterly numbers came in higher than we planned for.",
    "Please send the draft to the design team before Thursday.",
    "I think the migration can wait until the next release.",
    "Our customers asked for a simpler way to export reports.",
    "The new office opens in March if the permits arrive.",
    "Let us keep the budget meeting short this week.",
    "Marketing wants a decision on the launch date today.",
    "The test results look stable on every platform now.",
    "We should hire two more engineers for the mobile app.",
    "Can someone take notes and share them after the call?",
    "The vendor contract ends in June and needs a review.",
    "I will follow up with legal about the privacy terms.",
    "Support tickets dropped by a third since the update.",
    "Remember to book the training room for next Monday.",
]
BOT_LAG_S = 0.3  # the bot's default BOT_SPEAKER_LAG_MS
MIN_CONFIDENCE = 0.35  # the collector's default SPEAKER_MIN_CONFIDENCE
TRUTH_PAD_S = 0.15


@dataclass
class Cast:
    names: list[str]
    clips: list[list[Path]]
    texts: list[list[str]]


def cast(n: int, folder: Path) -> Cast:
    """``n`` speakers with 3 turns each (2 participants) or 2 (more)."""
    turns = 3 if n <= 2 else 2
    real = librivox()
    names, clips, texts = [], [], []
    sentence = 0
    for i in range(n):
        names.append(f"Speaker {i + 1}")
        mine, words = [], []
        for k in range(turns):
            if i == 0:
                clip = real[k % len(real)]
                mine.append(write_wav(folder / f"real-{k}.wav", clip.audio))
                words.append(clip.text)
            else:
                text = SENTENCES[sentence % len(SENTENCES)]
                sentence += 1
                mine.append(synthesize(text, folder / f"s{i}-{k}.wav", voice=VOICES[i % len(VOICES)]))
                words.append(text)
        clips.append(mine)
        texts.append(words)
    return Cast(names, clips, texts)


def _track(path: Path) -> np.ndarray:
    audio, rate = read_wav(path)
    return resample(audio, rate, SR)


def render(c: Cast, p: Plan, lead_s: float = 0.5, tail_s: float = 2.0) -> tuple[np.ndarray, list[np.ndarray]]:
    """The mix and each participant's own track, as the page plays them."""
    length = int((lead_s + p.end + tail_s) * SR)
    tracks = [np.zeros(length, np.float32) for _ in c.names]
    for turn in p.turns:
        audio = _track(c.clips[turn.who][turn.clip])
        at = int((lead_s + turn.at) * SR)
        tracks[turn.who][at : at + len(audio)] += audio[: length - at]
    mix = np.clip(sum(tracks), -1, 1).astype(np.float32)
    return mix, tracks


def indicator_events(p: Plan, names: list[str], lead_s: float) -> list[TimedEvent]:
    """The page's indicator as the collector gets it: the bot dates each change back by its lag."""
    events = []
    for span in p.indicator:
        key = f"p{span.who}"
        for kind, t in (("SPEAKER_START", span.on), ("SPEAKER_END", span.off)):
            ms = max(0.0, (lead_s + t - BOT_LAG_S) * 1000.0)
            events.append(TimedEvent(ms, kind, key, names[span.who]))
    events.sort(key=lambda e: (e.ms, e.kind != "SPEAKER_END"))
    return events


@dataclass
class Row:
    path: str
    n: int
    overlap: float
    measured_overlap: float
    words: int
    correct: int
    unknown: int
    wer: float
    cp_wer: float
    seconds: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.words if self.words else float("nan")


def _truth(c: Cast, p: Plan, lead_s: float, a: float, b: float, word: str) -> set[int]:
    """Who said this word: of the people voiced around it, the one(s) whose line has it.

    Time alone would call either talker right in crosstalk; the words decide there.
    Whisper's word times wander, so "around" is a second either side.
    """
    near = {v.who for v in p.voiced if lead_s + v.on - 1.0 < b and lead_s + v.off + 1.0 > a}
    key = normalize(word)
    saying = {
        t.who
        for t in p.turns
        if t.who in near
        and lead_s + t.at - 1.0 < b
        and lead_s + t.at + t.duration + 1.0 > a
        and key
        and key[0] in normalize(c.texts[t.who][t.clip])
    }
    if saying:
        return saying
    voiced = {v.who for v in p.voiced if lead_s + v.on - TRUTH_PAD_S < b and lead_s + v.off + TRUTH_PAD_S > a}
    if voiced:
        return voiced
    mid = (a + b) / 2
    nearest = min(p.voiced, key=lambda v: min(abs(lead_s + v.on - mid), abs(lead_s + v.off - mid)))
    return {nearest.who}


def reference_text(c: Cast, p: Plan) -> str:
    return " ".join(c.texts[t.who][t.clip] for t in p.turns)


async def run_mixed(
    url: str, c: Cast, p: Plan, speed: float
) -> tuple[list[tuple[str | None, float, float, str]], str]:
    lead = 0.5
    mix, _ = render(c, p, lead)
    stream = await stream_meeting(url, Meeting(mix), _config(), speed=speed)
    events = indicator_events(p, c.names, lead)
    words_out: list[tuple[str | None, float, float, str]] = []
    texts = []
    for seg in stream.final_segments():
        if not seg.get("completed") or not seg.get("words"):
            continue
        words = [WordTiming(w["start"], w["end"], w["word"]) for w in seg["words"]]
        parts = attribute_segment(
            events, seg["start"], seg["end"], seg["text"], words, split=True, min_confidence=MIN_CONFIDENCE
        )
        for part in parts:
            texts.append(part.text)
            words_out += [(part.speaker, w.start, w.end, w.word) for w in part.words]
    return words_out, " ".join(texts)


async def run_per_participant(
    url: str, c: Cast, p: Plan, speed: float
) -> tuple[list[tuple[str | None, float, float, str]], str]:
    lead = 0.5
    _, tracks = render(c, p, lead)
    runs = await asyncio.gather(
        *(stream_meeting(url, Meeting(t), _config(), speed=speed) for t in tracks if np.any(t))
    )
    spoken = [name for name, t in zip(c.names, tracks, strict=True) if np.any(t)]
    words_out: list[tuple[str | None, float, float, str]] = []
    for name, stream in zip(spoken, runs, strict=True):
        for seg in stream.final_segments():
            if seg.get("completed"):
                words_out += [(name, w["start"], w["end"], w["word"]) for w in seg.get("words") or []]
    words_out.sort(key=lambda w: w[1])
    return words_out, " ".join(w[3] for w in words_out)


def _config() -> dict[str, object]:
    return {"uid": str(uuid.uuid4()), "language": "en", "task": "transcribe"}


def score(path: str, n: int, overlap: float, c: Cast, p: Plan, words, text: str, seconds: float) -> Row:  # type: ignore[no-untyped-def]
    index = {name: i for i, name in enumerate(c.names)}
    correct = unknown = 0
    for speaker, a, b, word in words:
        if speaker is None:
            unknown += 1
        elif index[speaker] in _truth(c, p, 0.5, a, b, word):
            correct += 1
    return Row(
        path,
        n,
        overlap,
        p.overlap_share,
        len(words),
        correct,
        unknown,
        wer(reference_text(c, p), text),
        cp_wer(c, p, words),
        seconds,
    )


def cp_wer(c: Cast, p: Plan, words) -> float:  # type: ignore[no-untyped-def]
    """Concatenated per-speaker WER: each speaker's lines against the words attributed to them."""
    errors = total = 0.0
    for i, name in enumerate(c.names):
        reference = " ".join(c.texts[t.who][t.clip] for t in p.turns if t.who == i)
        hypothesis = " ".join(w[3] for w in words if w[0] == name)
        n = len(normalize(reference))
        errors += wer(reference, hypothesis) * n
        total += n
    return errors / total if total else 0.0


def table(rows: list[Row]) -> str:
    out = [
        "| path | participants | overlap (planned / measured) | words "
        "| speaker accuracy | unknown | WER | cpWER |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r.path} | {r.n} | {r.overlap:.0%} / {r.measured_overlap:.0%} | {r.words} | "
            f"{r.accuracy:.1%} | {r.unknown / max(1, r.words):.1%} | {r.wer:.1%} | {r.cp_wer:.1%} |"
        )
    return "\n".join(out)


def merge(rows: list[Row]) -> Row:
    """Several runs of one grid cell as one row: words summed, rates weighted by words."""
    first, words = rows[0], sum(r.words for r in rows)

    def mean(attr: str) -> float:
        return sum(getattr(r, attr) * max(1, r.words) for r in rows) / sum(max(1, r.words) for r in rows)

    return Row(
        first.path,
        first.n,
        first.overlap,
        sum(r.measured_overlap for r in rows) / len(rows),
        words,
        sum(r.correct for r in rows),
        sum(r.unknown for r in rows),
        mean("wer"),
        mean("cp_wer"),
        sum(r.seconds for r in rows),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument(
        "--speed", type=float, default=1.5, help="x real time (the server keeps up on tiny.en)"
    )
    parser.add_argument(
        "--full", action="store_true", help="every path x 2/4/6 participants x 0/10/30 %% overlap"
    )
    parser.add_argument("--runs", type=int, default=1, help="meetings per grid cell (other seeds)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--lag",
        type=float,
        default=BOT_LAG_S,
        help="the simulated indicator's lag, s (the bot still compensates 0.3 s: robustness)",
    )
    args = parser.parse_args()
    sizes, overlaps = [2, 4, 6], [0.0, 0.1, 0.3]
    grid = [("mixed", n, o) for n in sizes for o in overlaps]
    # Per participant, attribution is by construction; the reduced grid measures its WER at the worst overlap.
    grid += [("per participant", n, o) for n in sizes for o in (overlaps if args.full else [0.3])]
    with tempfile.TemporaryDirectory(prefix="vexa-bench-speakers-") as tmp:
        folder = Path(tmp)
        server = start_ours(args.model, folder)
        rows: list[Row] = []
        try:
            for path, n, overlap in grid:
                c = cast(n, folder)
                people = [Person(tuple(clips)) for clips in c.clips]
                label = "Teams / Zoom web (mixed)" if path == "mixed" else "Meet (per participant)"
                runner = run_mixed if path == "mixed" else run_per_participant
                runs = []
                for k in range(args.runs):
                    p = plan(people, PlanOptions(overlap=overlap, lag=args.lag, seed=args.seed + 10 * k + n))
                    t0 = time.monotonic()
                    words, text = await runner(server.url, c, p, args.speed)
                    runs.append(score(label, n, overlap, c, p, words, text, time.monotonic() - t0))
                row = merge(runs)
                rows.append(row)
                print(
                    f"{label:26s} n={n} overlap={overlap:.0%} (measured {row.measured_overlap:.0%}): "
                    f"accuracy {row.accuracy:.1%}, unknown {row.unknown / max(1, row.words):.1%}, "
                    f"WER {row.wer:.1%}, cpWER {row.cp_wer:.1%}, {row.words} words, {row.seconds:.0f}s",
                    flush=True,
                )
        finally:
            server.stop()
    print()
    print(
        f"model {args.model}, speed {args.speed}x, grid {'full' if args.full else 'reduced'}, "
        f"{args.runs} run(s) per cell from seed {args.seed}, "
        f"indicator lag {args.lag}s (compensated {BOT_LAG_S}s)"
    )
    print(table(rows))


if __name__ == "__main__":
    asyncio.run(main())
