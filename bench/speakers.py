"""Who said each word, measured through the real path: simulated page -> Chromium bot -> Whisper -> API.

Every meeting runs the whole stack (`vexa up`'s processes on embedded PostgreSQL and
Valkey): ``POST /bots`` through the gateway, the bot-manager's process orchestrator
starts a real bot (``python -m vexa bot``) that joins a SIMULATED meeting page in
Chromium, captures what the page plays, streams it to the real transcription service
(``--model``, tiny.en by default) and reports the page's speaking indicator; the
collector attributes and stores the segments in PostgreSQL; the transcript is read
back with ``GET /transcripts/{platform}/{id}`` once every segment is final.

The simulated pages deliver audio as the platforms' web clients do
(``vexa.testing.simulator``, planned by ``vexa.testing.sim_plan``):

- **Google Meet**: one media element per participant; the bot opens one transcription
  session per participant, so the speaker comes with the audio.
- **Teams / Zoom web**: ONE mixed stream for everyone, plus each tile's speaking
  indicator, shown ``--lag`` s late (each switch jittered by 0.1 s, dropping out in
  pauses, 4 random flickers a minute). The bot dates the indicator's changes back by its
  own compensation (``BOT_SPEAKER_LAG_MS``, 0.3 s) and the collector attributes each word
  (unknown below ``SPEAKER_MIN_CONFIDENCE``), splitting segments at speaker changes.

Participant 1 reads real LibriVox speech (Debian's pocketsphinx-testdata); the others
are espeak-ng voices reading other sentences. Turns go round-robin, overlapping for the
given share of the speech time.

Scoring, per word of the stored transcript: a word is right when the named speaker said
it by either of two readings. (1) The transcript's words (segment after segment) are aligned
with the planned words (turn after turn) by a Levenshtein alignment: the speaker of the
planned word it aligns with — so a misheard word keeps its speaker (a WER error, not an
attribution one). (2) By time and line (the API gives segments, not words: a word's time is
placed inside its segment by its character offset): of the people voiced within 1 s of it,
the one whose line has that word, else who was voiced then — this reading covers crosstalk,
where two speakers' segments interleave differently from the turns. A word that aligns
with nothing and is in no nearby line — an insertion nobody said, e.g. a hallucinated "you"
— has no true speaker: it is a WER error and is counted apart ("+ inserted"), not judged.
*Unknown* words count as not right. WER is against the
turns' text in turn order (crosstalk interleaves, so order counts too); cpWER is per
speaker (their lines against the words given to them). CPU is the whole path's: every
process of the stack and its children (bots, Chromium, Whisper), per meeting minute.

    .venv/bin/python bench/speakers.py                  # 4 participants, every platform (~10 min)
    .venv/bin/python bench/speakers.py --full           # 3 platforms x 2/4/6 participants x 0/10/30 %
    .venv/bin/python bench/speakers.py --lag 0.6        # the page's lag twice what the bot compensates
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from pathlib import Path

import httpx
import psutil

from _stack import stores
from vexa.embedded import free_port
from vexa.stack import Stack, StackSettings
from vexa.testing.real_speech import librivox
from vexa.testing.sim_plan import Plan
from vexa.testing.simulator import SimConfig, SimParticipant, SimulatorServer
from vexa.testing.speech import synthesize, write_wav
from vexa.testing.streaming_eval import align
from vexa.transcription.models import resolve_model
from vexa.transcription.wer import normalize, wer

PLATFORMS = ("google_meet", "teams", "zoom")
LABEL = {"google_meet": "Meet (per participant)", "teams": "Teams (mixed)", "zoom": "Zoom (mixed)"}
NAMES = ["Alice", "Bob", "Carol", "Dan", "Erin", "Frank", "Grace", "Heidi"]
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
TRUTH_PAD_S = 0.15
NEAR_S = 1.0
PORTS = ("GATEWAY", "ADMIN", "BOT_MANAGER", "COLLECTOR", "TRANSCRIPTION", "TRANSCRIPTION_HEALTH")


@dataclass
class Cast:
    names: list[str]
    clips: list[list[Path]]
    texts: list[list[str]]


def cast(n: int, turns: int, folder: Path) -> Cast:
    """``n`` speakers with ``turns`` turns each: real read speech for the first, espeak-ng for the rest."""
    real = librivox()
    names, clips, texts = [], [], []
    sentence = 0
    for i in range(n):
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
        names.append(NAMES[i])
        clips.append(mine)
        texts.append(words)
    return Cast(names, clips, texts)


class TreeCpu:
    """CPU seconds of a set of processes and all their descendants, including ones that come and go.

    Sampled every second: a process's last reading is kept after it exits (a bot, its
    Chromium), so at most its final second is missed.
    """

    def __init__(self, pids: list[int]) -> None:
        self.roots = [psutil.Process(p) for p in pids]
        self.seen: dict[tuple[int, float], float] = {}

    def sample(self) -> float:
        for root in self.roots:
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for p in procs:
                try:
                    t = p.cpu_times()
                    self.seen[(p.pid, p.create_time())] = t.user + t.system
                except psutil.Error:
                    continue
        return sum(self.seen.values())

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(1.0)


@dataclass
class Row:
    platform: str
    n: int
    overlap: float
    measured_overlap: float
    words: int  # judged: the transcript's words that some participant said
    inserted: int  # the others (insertions nobody said): WER errors, not judged for speaker
    correct: int
    unknown: int
    wer: float
    cp_wer: float
    meeting_s: float
    cpu_s: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.words if self.words else float("nan")

    @property
    def unknown_share(self) -> float:
        return self.unknown / self.words if self.words else float("nan")


Word = tuple[str | None, float, float, str]  # speaker, start, end (s on the plan's clock), word


def words_of(segments: list[dict], origin_at: float) -> list[Word]:
    """The transcript's words on the plan's clock, each placed in its segment by character offset."""
    out: list[Word] = []
    for seg in segments:
        start = datetime.fromisoformat(seg["absolute_start_time"]).timestamp() - origin_at
        end = datetime.fromisoformat(seg["absolute_end_time"]).timestamp() - origin_at
        tokens = seg["text"].split()
        length = max(1, sum(len(t) + 1 for t in tokens))
        at = 0
        for token in tokens:
            a = start + (end - start) * at / length
            at += len(token) + 1
            out.append((seg["speaker"], a, start + (end - start) * at / length, token))
    return out


def _said_by(c: Cast, p: Plan, a: float, b: float, word: str) -> set[int]:
    """Of the people voiced within ``NEAR_S`` of this word, the one(s) whose line has it."""
    key = normalize(word)
    return {
        t.who
        for t in p.turns
        if t.at - NEAR_S < b
        and t.at + t.duration + NEAR_S > a
        and key
        and key[0] in normalize(c.texts[t.who][t.clip])
    }


def _truth(c: Cast, p: Plan, a: float, b: float, word: str) -> set[int]:
    """Who said this word: the one(s) whose line has it, else who was voiced then."""
    saying = _said_by(c, p, a, b, word)
    if saying:
        return saying
    voiced = {v.who for v in p.voiced if v.on - TRUTH_PAD_S < b and v.off + TRUTH_PAD_S > a}
    if voiced:
        return voiced
    mid = (a + b) / 2
    nearest = min(p.voiced, key=lambda v: min(abs(v.on - mid), abs(v.off - mid)))
    return {nearest.who}


def cp_wer(c: Cast, p: Plan, words: list[Word]) -> float:
    """Concatenated per-speaker WER: each speaker's lines against the words attributed to them."""
    errors = total = 0.0
    for i, name in enumerate(c.names):
        reference = " ".join(c.texts[t.who][t.clip] for t in p.turns if t.who == i)
        n = len(normalize(reference))
        errors += wer(reference, " ".join(w[3] for w in words if w[0] == name)) * n
        total += n
    return errors / total if total else 0.0


def said(c: Cast, p: Plan) -> list[tuple[int, str]]:
    """Every planned word with its speaker, turn after turn (as the transcript's segments come)."""
    turns = sorted(p.turns, key=lambda t: t.at)
    return [(t.who, w) for t in turns for w in normalize(c.texts[t.who][t.clip])]


def truths(c: Cast, p: Plan, words: list[Word]) -> list[set[int] | None]:
    """Who may have said each transcript word: the speaker of the planned word it aligns with (a
    Levenshtein alignment of the whole meeting, so a misheard word keeps its speaker: a WER error,
    not an attribution one), together with ``_truth``'s answer by time and line (in crosstalk the
    segments of two speakers interleave differently from the turns, where the alignment alone
    would pair words across speakers). None for a word that aligns with nothing and is in no
    nearby line: an insertion (a hallucination, a split word) that nobody said has no true
    speaker, so it is a WER error and is left out of the attribution figure."""
    planned = said(c, p)
    heard: list[str] = []
    owner: list[int] = []
    for i, (_, _, _, word) in enumerate(words):
        for token in normalize(word):
            heard.append(token)
            owner.append(i)
    aligned: list[set[int]] = [set() for _ in words]
    for _, r, h in align([w for _, w in planned], heard):
        if r is not None and h is not None:
            aligned[owner[h]].add(planned[r][0])
    out: list[set[int] | None] = []
    for found, (_, a, b, word) in zip(aligned, words, strict=True):
        if found:
            out.append(found | _truth(c, p, a, b, word))
        else:
            out.append(_said_by(c, p, a, b, word) or None)
    return out


def score(platform: str, overlap: float, c: Cast, p: Plan, words: list[Word], cpu_s: float) -> Row:
    index = {name: i for i, name in enumerate(c.names)}
    correct = unknown = judged = 0
    for (speaker, _, _, _), truth in zip(words, truths(c, p, words), strict=True):
        if truth is None:
            continue
        judged += 1
        if speaker is None:
            unknown += 1
        elif speaker in index and index[speaker] in truth:
            correct += 1
    reference = " ".join(c.texts[t.who][t.clip] for t in p.turns)
    return Row(
        platform,
        len(c.names),
        overlap,
        p.overlap_share,
        judged,
        len(words) - judged,
        correct,
        unknown,
        wer(reference, " ".join(w[3] for w in words)),
        cp_wer(c, p, words),
        p.end,
        cpu_s,
    )


_ids = count(1)


def native_id(platform: str) -> str:
    n = next(_ids)
    if platform == "google_meet":
        letters = "".join(chr(ord("a") + (n // 26**k) % 26) for k in range(10))
        return f"{letters[:3]}-{letters[3:7]}-{letters[7:]}"
    return f"{7000000000 + n}"


async def one_meeting(
    http: httpx.AsyncClient,
    stack: Stack,
    sim: SimulatorServer,
    platform: str,
    c: Cast,
    config: SimConfig,
    show: bool,
) -> tuple[Plan, list[Word]]:
    """Run one meeting through the whole stack; the plan it played and the stored transcript's words.

    The transcript is read once the meeting is over, the transcription service has no session
    left (its final decodes are published before a session ends: on a loaded machine they come
    seconds after the bot left) and every segment is final and unchanged for a poll.
    """
    native = native_id(platform)
    p = sim.configure(native, config)
    created = await http.post(
        "/bots", json={"platform": platform, "native_meeting_id": native, "language": "en"}
    )
    created.raise_for_status()
    deadline = time.monotonic() + 120 + 2 * p.end
    status, previous, segments = "", None, []
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        found = await http.get(f"/transcripts/{platform}/{native}")
        body = found.json() if found.status_code == 200 else {}
        status = body.get("status", "")
        if status not in ("completed", "failed") or await _transcribing(stack):
            continue
        segments = [s for s in body.get("segments", []) if s["text"].strip()]
        if all(s.get("completed") for s in segments) and segments == previous:
            break
        previous = segments
    state = sim.state(native) or {}
    if status != "completed" or state.get("origin_at") is None:
        raise RuntimeError(f"{platform}/{native}: meeting {status or 'never started'}, page state {state}")
    segments.sort(key=lambda s: s["absolute_start_time"])
    if show:
        _show(c, p, segments, state["origin_at"])
    return p, words_of(segments, state["origin_at"])


async def _transcribing(stack: Stack) -> bool:
    """Whether the transcription service still has a session open (the meetings run one at a time)."""
    async with httpx.AsyncClient(timeout=10) as c:
        health = (await c.get(stack.services["transcription"].health_url)).json()
    return bool(health.get("active_sessions")) or bool(health.get("decodes_in_flight"))


def _show(c: Cast, p: Plan, segments: list[dict], origin_at: float) -> None:
    """What was said (the plan) and what the transcript holds, on one clock, for reading by eye."""
    said = [(t.at, t.at + t.duration, c.names[t.who], c.texts[t.who][t.clip]) for t in p.turns]
    heard = [
        (
            datetime.fromisoformat(s["absolute_start_time"]).timestamp() - origin_at,
            datetime.fromisoformat(s["absolute_end_time"]).timestamp() - origin_at,
            f"-> {s['speaker']} ({s.get('speaker_confidence')})",
            s["text"],
        )
        for s in segments
    ]
    for a, b, who, what in sorted(said + heard):
        print(f"  {a:6.2f}-{b:6.2f} {who:24s} {what}")


def start_stack(folder: Path, db_url: str, redis_url: str, meeting_url: str, model: str) -> Stack:
    settings = StackSettings(
        DATABASE_URL=db_url,
        REDIS_URL=redis_url,
        ADMIN_API_TOKEN="bench-speakers-admin",
        **{f"{p}_PORT": str(free_port()) for p in PORTS},
    )  # type: ignore[arg-type]
    env = {
        "MEETING_BASE_URL": meeting_url,
        "WHISPER_MODEL": model,
        "BOT_LEAVE_WHEN_ALONE_S": "2",
        "IMMUTABILITY_THRESHOLD": "2",
        "BACKGROUND_TASK_INTERVAL": "1",
        "RECORDING_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    return Stack(settings=settings, home=folder / "home", extra_env=env, any_free_ports=True).start()


def api_key(stack: Stack) -> str:
    admin = {"X-Admin-API-Key": stack.admin_token}
    with httpx.Client(base_url=stack.gateway_url, headers=admin, timeout=30) as c:
        user = c.post("/admin/users", json={"email": "bench-speakers@example.com", "max_concurrent_bots": 10})
        user.raise_for_status()
        token = c.post(f"/admin/users/{user.json()['id']}/tokens")
        token.raise_for_status()
        return token.json()["token"]


def grid(full: bool, only: str = "") -> list[tuple[str, int, float]]:
    if full:
        cells = [(p, n, o) for p in PLATFORMS for n in (2, 4, 6) for o in (0.0, 0.1, 0.3)]
    else:  # Meet's speakers come with the audio: its worst case (most crosstalk) stands for it.
        cells = [("google_meet", 4, 0.3)] + [(p, 4, o) for p in ("teams", "zoom") for o in (0.0, 0.1, 0.3)]
    wanted = [w.split(":") for w in only.split(",") if w]
    return [cell for cell in cells if not wanted or any(_matches(cell, w) for w in wanted)]


def _matches(cell: tuple[str, int, float], want: list[str]) -> bool:
    """``platform[:participants[:overlap %]]``, e.g. ``teams`` or ``google_meet:2:0``."""
    platform, n, overlap = cell
    return (
        want[0] == platform
        and (len(want) < 2 or int(want[1]) == n)
        and (len(want) < 3 or round(float(want[2])) == round(overlap * 100))
    )


def merge(rows: list[Row]) -> Row:
    """Several runs of one cell as one row: words summed, rates weighted by words."""
    weight = [max(1, r.words) for r in rows]

    def mean(attr: str) -> float:
        return sum(getattr(r, attr) * w for r, w in zip(rows, weight, strict=True)) / sum(weight)

    first = rows[0]
    return Row(
        first.platform,
        first.n,
        first.overlap,
        sum(r.measured_overlap for r in rows) / len(rows),
        sum(r.words for r in rows),
        sum(r.inserted for r in rows),
        sum(r.correct for r in rows),
        sum(r.unknown for r in rows),
        mean("wer"),
        mean("cp_wer"),
        sum(r.meeting_s for r in rows),
        sum(r.cpu_s for r in rows),
    )


def table(rows: list[Row]) -> str:
    out = [
        "| platform (path) | participants | overlap planned / measured | words judged (+ inserted) "
        "| speaker accuracy "
        "| unknown | WER | cpWER | CPU s per meeting min |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {LABEL[r.platform]} | {r.n} | {r.overlap:.0%} / {r.measured_overlap:.0%} | "
            f"{r.words} (+{r.inserted}) | "
            f"{r.accuracy:.1%} | {r.unknown_share:.1%} | {r.wer:.1%} | {r.cp_wer:.1%} | "
            f"{60 * r.cpu_s / max(1.0, r.meeting_s):.0f} |"
        )
    return "\n".join(out)


async def run_grid(args: argparse.Namespace, stack: Stack, sim: SimulatorServer, folder: Path) -> list[Row]:
    key = api_key(stack)
    cpu = TreeCpu([proc.pid for proc in stack.services.values() if proc.pid is not None])
    sampler = asyncio.create_task(cpu.run())
    casts: dict[int, Cast] = {}
    rows: list[Row] = []
    try:
        async with httpx.AsyncClient(
            base_url=stack.gateway_url, headers={"X-API-Key": key}, timeout=60
        ) as http:
            for platform, n, overlap in grid(args.full, args.only):
                if n not in casts:
                    (folder / f"cast{n}").mkdir()
                    casts[n] = cast(n, args.turns or (3 if n <= 2 else 2), folder / f"cast{n}")
                c = casts[n]
                runs = []
                for k in range(args.runs):
                    config = SimConfig(
                        participants=[
                            SimParticipant(name, clips[0], more=tuple(clips[1:]))
                            for name, clips in zip(c.names, c.clips, strict=True)
                        ],
                        admit_after=0.5,
                        play_delay=2.0,
                        leave_after_audio=2.0,
                        overlap=overlap,
                        indicator_lag=args.lag,
                        seed=args.seed + 10 * k + n,
                    )
                    before = cpu.sample()
                    p, words = await one_meeting(http, stack, sim, platform, c, config, args.show)
                    runs.append(score(platform, overlap, c, p, words, cpu.sample() - before))
                row = merge(runs)
                rows.append(row)
                print(
                    f"{LABEL[platform]:24s} n={n} overlap={overlap:.0%} "
                    f"(measured {row.measured_overlap:.0%}): "
                    f"accuracy {row.accuracy:.1%}, unknown {row.unknown_share:.1%}, WER {row.wer:.1%}, "
                    f"cpWER {row.cp_wer:.1%}, {row.words} words judged (+{row.inserted} inserted), "
                    f"{row.meeting_s:.0f} s of meeting, "
                    f"{row.cpu_s:.0f} CPU s, load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    finally:
        sampler.cancel()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en", help="WHISPER_MODEL of the stack")
    parser.add_argument(
        "--full", action="store_true", help="3 platforms x 2/4/6 participants x 0/10/30 %% overlap"
    )
    parser.add_argument("--runs", type=int, default=1, help="meetings per cell (other seeds)")
    parser.add_argument(
        "--turns", type=int, default=0, help="turns per participant (default 3 for 2, else 2)"
    )
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--show", action="store_true", help="print each meeting's plan and transcript")
    parser.add_argument(
        "--only",
        default="",
        help="only these cells of the grid: platform[:participants[:overlap %%]], comma-separated",
    )
    parser.add_argument(
        "--lag", type=float, default=BOT_LAG_S, help="the page's indicator lag, s (the bot compensates 0.3 s)"
    )
    args = parser.parse_args()
    model_path = resolve_model(args.model)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="vexa-bench-speakers-") as tmp, stores() as (db_url, redis_url):
        folder = Path(tmp)
        sim = SimulatorServer(SimConfig(participants=[]), free_port()).start()
        stack = start_stack(folder, db_url, redis_url, sim.base_url, args.model)
        try:
            rows = asyncio.run(run_grid(args, stack, sim, folder))
        finally:
            stack.stop()
            sim.stop()
    print()
    print(
        f"model {args.model} ({model_path}); grid {'full' if args.full else 'default'}, "
        f"{args.runs} run(s) per cell from seed {args.seed}; "
        f"indicator lag {args.lag} s (bot compensates {BOT_LAG_S} s); load average "
        f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after ({psutil.cpu_count()} CPUs)"
    )
    print(table(rows))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
