"""The SIMULATED meeting's plan: turns, crosstalk, a late flickering indicator, people coming and going."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from vexa.testing.sim_plan import Person, PlanOptions, plan, voiced_spans
from vexa.testing.simulator import SimConfig, SimParticipant


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from vexa.testing.speech import synthesize

    folder = tmp_path_factory.mktemp("plan")
    lines = [
        "The budget review is on Friday and the numbers look good.",
        "I will send the hiring plan to the whole team tomorrow.",
        "The office party has moved to December this year.",
        "Sorry I am late, the train was delayed again today.",
    ]
    return [synthesize(t, folder / f"c{i}.wav") for i, t in enumerate(lines)]


@pytest.mark.parametrize("overlap", [0.0, 0.1, 0.3])
def test_overlap_share_is_what_was_asked(clips, overlap):
    people = [Person((clips[0], clips[2])), Person((clips[1],)), Person((clips[3],))]
    p = plan(people, PlanOptions(overlap=overlap, seed=5))
    assert [t.who for t in p.turns] == [0, 1, 2, 0]
    assert p.overlap_share == pytest.approx(overlap, abs=0.03)
    if overlap == 0:
        starts = sorted(p.turns, key=lambda t: t.at)
        voiced = {(t.who, t.clip): voiced_spans(people[t.who].clips[t.clip])[1] for t in starts}
        for a, b in pairwise(starts):
            end_a = a.at + voiced[a.who, a.clip][-1][1]
            assert b.at + voiced[b.who, b.clip][0][0] - end_a == pytest.approx(0.8, abs=0.02)


def test_indicator_is_late_and_covers_each_voiced_span(clips):
    p = plan([Person((clips[0],)), Person((clips[1],))], PlanOptions(lag=0.3, lag_jitter=0.1, seed=2))
    for v in p.voiced:
        mine = [s for s in p.indicator if s.who == v.who and s.on < v.off + 0.5 and s.off > v.on]
        assert mine, v
        assert 0.2 - 1e-6 <= min(s.on for s in mine) - v.on <= 0.4 + 1e-6
        assert 0.2 - 1e-6 <= max(s.off for s in mine) - v.off <= 0.4 + 1e-6


def test_late_joiner_leaver_rename_and_silent(clips):
    people = [
        Person((clips[0], clips[2]), renamed=True),
        Person((clips[1],), leaves=True),
        Person((clips[3],), join_at=20.0),
        Person(()),
    ]
    p = plan(people, PlanOptions(seed=1))
    carol = next(t for t in p.turns if t.who == 2)
    assert carol.at >= 21.0 and p.joins == {2: 20.0}
    bob = next(t for t in p.turns if t.who == 1)
    assert p.leaves[1] == pytest.approx(bob.at + bob.duration + 1.5, abs=0.01)
    first = p.turns[0]
    assert p.renames[0] == pytest.approx(first.at + first.duration + 0.4, abs=0.01)
    assert not any(t.who == 3 for t in p.turns) and not any(s.who == 3 for s in p.indicator)


def test_participant_cli_form(clips):
    spec = f"Alice={clips[0]},{clips[2]};join=3;leave;rename=Alice Smith"
    alice = SimParticipant.parse(spec)
    assert alice.clips == (clips[0], clips[2]) and alice.join_at == 3.0 and alice.leaves
    assert alice.rename_to == "Alice Smith"
    assert SimParticipant.parse("Dana;silent").clips == ()
    for bad in ("Bob", f"Bob={clips[0]};dance", "Bob=/no/such.wav"):
        with pytest.raises(ValueError):
            SimParticipant.parse(bad)
    assert SimConfig(participants=[]).audio_mode("google_meet") == "per_participant"
    assert SimConfig(participants=[]).audio_mode("teams") == "mixed"
    assert SimConfig(participants=[], audio="mixed").audio_mode("google_meet") == "mixed"


def test_each_meeting_can_have_its_own_participants_and_plan(clips):
    """One server, two meetings of different sizes and overlaps (what bench/speakers.py runs)."""
    import json
    import re

    import httpx

    from vexa.embedded import free_port
    from vexa.testing.simulator import SimulatorServer

    default = SimConfig(participants=[SimParticipant("Alice", clips[0]), SimParticipant("Bob", clips[1])])
    crowd = SimConfig(
        participants=[SimParticipant(n, c) for n, c in zip(("Carol", "Dan", "Erin"), clips[1:], strict=True)],
        overlap=0.3,
        admit_after=-1,
    )
    with SimulatorServer(default, free_port()) as server:
        planned = server.configure("5566778899", crowd)
        assert planned.overlap_share == pytest.approx(0.3, abs=0.05)
        with httpx.Client(base_url=server.base_url, timeout=10) as http:

            def page(path: str) -> dict:
                html = http.get(path).text
                found = re.search(r"<script id='sim-config' type='application/json'>(.*?)</script>", html)
                return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))

            own, shared = page("/j/5566778899"), page("/j/1122334455")
            assert [p["name"] for p in own["participants"]] == ["Carol", "Dan", "Erin"]
            assert [p["name"] for p in shared["participants"]] == ["Alice", "Bob"]
            assert own["plan"]["turns"] == planned.as_json()["turns"] != shared["plan"]["turns"]
            wav = http.get(own["participants"][2]["audio"][0])
            assert wav.status_code == 200 and wav.content == clips[3].read_bytes()
            assert http.get(shared["participants"][0]["audio"][0]).content == clips[0].read_bytes()
        assert server.state("5566778899")["participants"] == ["Carol", "Dan", "Erin"]
