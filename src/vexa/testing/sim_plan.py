"""The script of a SIMULATED meeting: who speaks when, and what the page's speaker indicator shows.

Computed once in Python and handed to the page (``sim.js`` only executes it), so a
bench can rebuild exactly what a meeting played (``bench/speakers.py``) and tests
know who said what. What it models, per real web clients:

* turns taken round-robin over each participant's clips, separated by ``gap`` s,
  or overlapping the previous turn so that two people talk at once for
  ``overlap`` of the speech time (crosstalk);
* the active-speaker indicator: on while the participant's audio is voiced (a
  20 ms level detector with a hangover, so pauses longer than the hangover turn it
  off: the flicker real indicators show), shown ``lag`` s late (each switch
  jittered), plus random short off-blips;
* people joining late (their first turn waits for them), leaving early (their tile
  goes away after their last turn), renamed after their first turn, silent.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np

from vexa.testing.speech import read_wav

FRAME_S = 0.02
HANGOVER_S = 0.3
LEVEL = 0.08  # of the clip's loudest frame


@dataclass(frozen=True)
class Turn:
    who: int  # participant index
    clip: int  # index into that participant's clips
    at: float  # seconds after the meeting's audio origin
    duration: float


@dataclass(frozen=True)
class Span:
    who: int
    on: float
    off: float


@dataclass
class Plan:
    turns: list[Turn] = field(default_factory=list)
    voiced: list[Span] = field(default_factory=list)  # the truth: when each person's audio is voiced
    indicator: list[Span] = field(default_factory=list)  # what the page shows (late, flickering)
    joins: dict[int, float] = field(default_factory=dict)
    leaves: dict[int, float] = field(default_factory=dict)
    renames: dict[int, float] = field(default_factory=dict)
    end: float = 0.0

    @property
    def overlap_share(self) -> float:
        """Share of the speech time (union) with two or more people voiced."""
        return _overlap_share(self.voiced)

    def as_json(self) -> dict[str, object]:
        return {
            "turns": [asdict(t) for t in self.turns],
            "indicator": [asdict(s) for s in self.indicator],
            "joins": {str(k): v for k, v in self.joins.items()},
            "leaves": {str(k): v for k, v in self.leaves.items()},
            "renames": {str(k): v for k, v in self.renames.items()},
            "end": self.end,
        }


@dataclass(frozen=True)
class PlanOptions:
    gap: float = 0.8
    overlap: float = 0.0
    lag: float = 0.3
    lag_jitter: float = 0.1
    blips_per_min: float = 4.0
    seed: int = 1


@dataclass(frozen=True)
class Person:
    """What the planner needs of a participant."""

    clips: tuple[Path, ...]
    join_at: float = 0.0
    leaves: bool = False
    renamed: bool = False


def voiced_spans(path: Path) -> tuple[float, list[tuple[float, float]]]:
    """(duration, voiced intervals) of a WAV, by a level detector with a hangover."""
    audio, rate = read_wav(path)
    win = max(1, int(FRAME_S * rate))
    frames = audio[: len(audio) // win * win].reshape(-1, win)
    rms = np.sqrt((frames**2).mean(axis=1)) if len(frames) else np.zeros(0)
    loud = rms >= LEVEL * (rms.max() if len(rms) else 1.0)
    spans: list[tuple[float, float]] = []
    hang = int(HANGOVER_S / FRAME_S)
    i = 0
    while i < len(loud):
        if not loud[i]:
            i += 1
            continue
        j = i
        quiet = 0
        while j < len(loud) and quiet <= hang:
            quiet = 0 if loud[j] else quiet + 1
            j += 1
        spans.append((i * FRAME_S, (j - quiet) * FRAME_S))
        i = j
    return len(audio) / rate, spans


def plan(people: list[Person], options: PlanOptions) -> Plan:
    rng = random.Random(options.seed)
    shapes = {p: voiced_spans(p) for person in people for p in person.clips}
    queue = [[(i, k) for k in range(len(person.clips))] for i, person in enumerate(people)]
    order: list[tuple[int, int]] = []
    while any(queue):
        for q in queue:
            if q:
                order.append(q.pop(0))
    # Late joiners speak once they are in: move their turns after everyone who is there.
    order.sort(key=lambda ik: people[ik[0]].join_at > 0)
    out = Plan(joins={i: p.join_at for i, p in enumerate(people) if p.join_at > 0})
    # Overlap and gaps are measured between voiced audio, not the clips' silent edges.
    total = sum(_voiced_s(shapes[people[i].clips[k]][1]) for i, k in order)
    overlap_each = options.overlap * total / (1 + options.overlap) / max(1, len(order) - 1)
    t = 0.0
    prev_voiced_end = 0.0
    prev_voiced = 0.0
    for n, (i, k) in enumerate(order):
        duration, spans = shapes[people[i].clips[k]]
        first_on = spans[0][0] if spans else 0.0
        voiced = (spans[-1][1] - first_on) if spans else duration
        at = prev_voiced_end + options.gap - first_on if n else 0.0
        if n and options.overlap > 0:
            at = prev_voiced_end - min(overlap_each, 0.6 * min(prev_voiced, voiced)) - first_on
        at = max(at, people[i].join_at + 1.0 if people[i].join_at > 0 else 0.0, 0.0)
        out.turns.append(Turn(i, k, round(at, 3), duration))
        for a, b in spans:
            out.voiced.append(Span(i, round(at + a, 3), round(at + b, 3)))
            on = at + a + options.lag + rng.uniform(-options.lag_jitter, options.lag_jitter)
            off = at + b + options.lag + rng.uniform(-options.lag_jitter, options.lag_jitter)
            out.indicator.extend(_blips(i, on, max(on + 0.1, off), options.blips_per_min, rng))
        prev_voiced_end = at + (spans[-1][1] if spans else duration)
        prev_voiced = voiced
        t = max(t, at + duration)
    for i, person in enumerate(people):
        mine = [tn for tn in out.turns if tn.who == i]
        if person.leaves and mine:
            out.leaves[i] = round(mine[-1].at + mine[-1].duration + 1.5, 3)
        if person.renamed and mine:
            out.renames[i] = round(mine[0].at + mine[0].duration + 0.4, 3)
    out.end = round(t, 3)
    return out


def _voiced_s(spans: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in spans)


def _blips(who: int, on: float, off: float, per_min: float, rng: random.Random) -> list[Span]:
    """The indicator for one voiced span, with random short drop-outs (flicker)."""
    spans = [Span(who, round(on, 3), round(off, 3))]
    expected = per_min * (off - on) / 60.0
    for _ in range(int(expected) + (1 if rng.random() < expected % 1 else 0)):
        last = spans.pop()
        if last.off - last.on < 1.0:
            spans.append(last)
            break
        cut = rng.uniform(last.on + 0.4, last.off - 0.4)
        spans += [Span(who, last.on, round(cut, 3)), Span(who, round(cut + 0.15, 3), last.off)]
    return spans


def _overlap_share(spans: list[Span]) -> float:
    points = sorted({s.on for s in spans} | {s.off for s in spans})
    union = both = 0.0
    for a, b in pairwise(points):
        mid = (a + b) / 2
        active = {s.who for s in spans if s.on <= mid < s.off}
        if active:
            union += b - a
        if len(active) > 1:
            both += b - a
    return both / union if union else 0.0
