"""GET /transcripts?format= exports and GET /meetings filters and paging, through the real collector API.

Segments go in the way the transcription service sends them (Redis stream, two bot
sessions of one meeting), are persisted by the real persister, and come out as
SubRip, WebVTT, text and Markdown.
"""

from __future__ import annotations

import re
from datetime import timedelta

from collector_helpers import T0, insert_meeting, push, session_start, transcription

from vexa.streams import Segment

URL = "/transcripts/google_meet/abc-defg-hij"
SRT_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)$")
VTT_TIME = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)$")


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_srt(text: str) -> list[tuple[float, float, str]]:
    cues = []
    for n, block in enumerate(text.strip().split("\n\n"), start=1):
        lines = block.split("\n")
        assert lines[0] == str(n), block
        times = SRT_TIME.match(lines[1])
        assert times, lines[1]
        g = times.groups()
        cues.append((_seconds(*g[:4]), _seconds(*g[4:]), " ".join(lines[2:])))
    return cues


def parse_vtt(text: str) -> list[tuple[float, float, str]]:
    header, *blocks = text.strip().split("\n\n")
    assert header == "WEBVTT"
    cues = []
    for block in blocks:
        lines = block.split("\n")
        times = VTT_TIME.match(lines[0])
        assert times, lines[0]
        g = times.groups()
        cues.append((_seconds(*g[:4]), _seconds(*g[4:]), " ".join(lines[1:])))
    return cues


async def _two_session_meeting(harness, db, redis, make_user) -> tuple[str, int]:
    """Session 2 (the bot rejoined) starts at offset 0 again, 40 s after session 1."""
    user_id, token = await make_user()
    meeting_id = await insert_meeting(db, user_id, status="completed")
    await push(redis, session_start(token, "s1", T0))
    await push(redis, session_start(token, "s2", T0 + timedelta(seconds=40)))
    await push(
        redis,
        transcription(
            token,
            "s1",
            [
                Segment(start=1.0, end=3.5, text="Good morning, <everyone> & welcome.", speaker="Alice"),
                Segment(start=4.0, end=6.0, text="The budget --> looks fine.", speaker="Bob"),
            ],
        ),
    )
    await push(
        redis, transcription(token, "s2", [Segment(start=0.5, end=2.0, text="I'm back.", speaker="Alice")])
    )
    await harness.drain()
    harness.collector.persister.threshold = timedelta(0)
    assert await harness.collector.persister.run_once() == 3
    return token, meeting_id


async def test_exports_follow_one_timeline_across_sessions(harness, db, redis, make_user):
    token, _ = await _two_session_meeting(harness, db, redis, make_user)
    headers = {"X-API-Key": token}
    as_json = await harness.client.get(URL, headers=headers)
    assert as_json.headers["content-type"] == "application/json"
    texts = [s["text"] for s in as_json.json()["segments"]]
    assert texts == ["Good morning, <everyone> & welcome.", "The budget --> looks fine.", "I'm back."]

    srt = await harness.client.get(URL, params={"format": "srt"}, headers=headers)
    assert srt.status_code == 200
    assert srt.headers["content-type"].startswith("application/x-subrip")
    assert 'filename="google_meet-abc-defg-hij.srt"' in srt.headers["content-disposition"]
    cues = parse_srt(srt.text)
    # Times from the first words (T0 + 1 s): session 2's 0.5 s is 40.5 s into session 1.
    assert [(c[0], c[1]) for c in cues] == [(0.0, 2.5), (3.0, 5.0), (39.5, 41.0)]
    assert [c[2] for c in cues] == [
        "Alice: Good morning, <everyone> & welcome.",
        "Bob: The budget --> looks fine.",
        "Alice: I'm back.",
    ]

    vtt = await harness.client.get(URL, params={"format": "vtt"}, headers=headers)
    assert vtt.headers["content-type"].startswith("text/vtt")
    vcues = parse_vtt(vtt.text)
    assert [(c[0], c[1]) for c in vcues] == [(c[0], c[1]) for c in cues]
    assert vcues[0][2] == "<v Alice>Good morning, &lt;everyone&gt; &amp; welcome."
    assert vcues[1][2] == "<v Bob>The budget --&gt; looks fine."  # a cue text can never end the cue

    txt = await harness.client.get(URL, params={"format": "txt"}, headers=headers)
    assert txt.text.splitlines() == [
        "[00:00:00] Alice: Good morning, <everyone> & welcome.",
        "[00:00:03] Bob: The budget --> looks fine.",
        "[00:00:39] Alice: I'm back.",
    ]

    await harness.client.patch(
        "/meetings/google_meet/abc-defg-hij", json={"data": {"notes": "Ship *it*"}}, headers=headers
    )
    md = (await harness.client.get(URL, params={"format": "md"}, headers=headers)).text
    assert md.startswith("# Weekly (google\\_meet abc-defg-hij)\n")
    assert "## Notes\n\nShip \\*it\\*\n" in md
    assert "**Alice** `00:00:00`: Good morning, \\<everyone\\> & welcome.  " in md

    bad = await harness.client.get(URL, params={"format": "docx"}, headers=headers)
    assert bad.status_code == 422


async def test_meetings_filters_and_paging(harness, db, make_user):
    user_id, token = await make_user()
    other_id, _ = await make_user()
    ids = []
    for i in range(7):
        status = "completed" if i % 2 else "active"
        ids.append(
            await insert_meeting(db, user_id, native=f"{100000000 + i}", platform="zoom", status=status)
        )
    ids.append(await insert_meeting(db, user_id, status="failed"))
    await insert_meeting(db, other_id, native="999999999", platform="zoom", status="completed")
    headers = {"X-API-Key": token}

    everything = await harness.client.get("/meetings", headers=headers)
    assert "x-total-count" not in everything.headers  # the upstream call is unchanged
    assert [m["id"] for m in everything.json()["meetings"]] == ids[::-1]

    page = await harness.client.get("/meetings", params={"limit": 3, "offset": 3}, headers=headers)
    assert page.headers["x-total-count"] == "8"
    assert [m["id"] for m in page.json()["meetings"]] == ids[::-1][3:6]

    done = await harness.client.get(
        "/meetings", params={"status": "completed,failed", "limit": 10}, headers=headers
    )
    assert done.headers["x-total-count"] == "4"
    assert {m["status"] for m in done.json()["meetings"]} == {"completed", "failed"}

    zoom_live = await harness.client.get(
        "/meetings", params={"status": "active", "platform": "zoom", "limit": 2}, headers=headers
    )
    assert zoom_live.headers["x-total-count"] == "4"
    assert [m["id"] for m in zoom_live.json()["meetings"]] == [ids[6], ids[4]]

    bad = await harness.client.get("/meetings", params={"status": "sleeping"}, headers=headers)
    assert bad.status_code == 422 and "sleeping" in bad.json()["detail"][0]["msg"]
    assert (await harness.client.get("/meetings", params={"limit": 0}, headers=headers)).status_code == 422
