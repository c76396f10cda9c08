"""End to end, real everything: `vexa up`'s stack (real PostgreSQL, Redis, every service as
its own process, the transcription service with a real Whisper model), a SIMULATED Google
Meet page on 127.0.0.1 with two synthetic participants, and `POST /bots` through the gateway.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from e2e_helpers import new_api_key, start_stack

from vexa.embedded import free_port
from vexa.stack import Stack
from vexa.testing.simulator import SimConfig, SimParticipant, SimulatorServer
from vexa.testing.speech import synthesize
from vexa.transcription.wer import wer

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.model, pytest.mark.timeout(600)]

SCRIPT = {
    "Alice": "Good morning everyone. The budget review is on Friday and the numbers look good.",
    "Bob": "Thank you Alice. I will send the hiring plan to the whole team tomorrow morning.",
}
WER_BOUND = 0.35  # tiny.en on espeak-ng speech measured ~0.10 offline; streaming + capture add some


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorServer]:
    folder = tmp_path_factory.mktemp("speech")
    people = [
        SimParticipant(name, synthesize(text, folder / f"{name}.wav", voice=voice))
        for (name, text), voice in zip(SCRIPT.items(), ["en-us", "en-us+m3"], strict=True)
    ]
    config = SimConfig(
        participants=people,
        admit_after=1.0,
        leave_after_audio=4.0,
        unknown_meetings=frozenset({"nop-efou-ndx"}),
    )
    server = SimulatorServer(config, free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(database_url: str, redis_url: str, simulator: SimulatorServer, tmp_path_factory) -> Iterator[Stack]:
    home = Path(tmp_path_factory.mktemp("vexa-home"))
    running = start_stack(
        database_url, redis_url, home, simulator.base_url, "tiny.en", BOT_ADMISSION_TIMEOUT_S="8"
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api_key(stack: Stack) -> str:
    return new_api_key(stack, "e2e@example.com")


async def _statuses_until_done(
    gateway: str, key: str, native_id: str, started: asyncio.Event, timeout: float
) -> list[dict]:
    """Every meeting.status event for the meeting until it completes or fails."""
    seen: list[dict] = []
    ws_url = gateway.replace("http://", "ws://") + "/ws"
    async with websockets.connect(ws_url, additional_headers={"X-API-Key": key}) as ws:
        await ws.send(
            json.dumps(
                {"action": "subscribe", "meetings": [{"platform": "google_meet", "native_id": native_id}]}
            )
        )
        started.set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
            except TimeoutError:
                break
            if event.get("type") == "meeting.status":
                seen.append(event["payload"])
                if event["payload"]["status"] in ("completed", "failed"):
                    break
    return seen


async def _wait_meeting(c: httpx.AsyncClient, native: str, statuses: tuple[str, ...], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    meeting: dict = {}
    while time.monotonic() < deadline:
        meeting = next(
            m for m in (await c.get("/meetings")).json()["meetings"] if m["native_meeting_id"] == native
        )
        if meeting["status"] in statuses:
            break
        await asyncio.sleep(0.5)
    return meeting


async def _final_text_by_speaker(
    c: httpx.AsyncClient, native: str, timeout: float, source: str = "live"
) -> dict[str, str]:
    """Each speaker's words once every segment is final (immutable a few seconds after it stops changing)."""
    deadline = time.monotonic() + timeout
    by_speaker: dict[str, str] = {}
    while time.monotonic() < deadline:
        transcript = (await c.get(f"/transcripts/google_meet/{native}", params={"source": source})).json()
        segments = transcript["segments"]
        by_speaker = {}
        for seg in segments:
            assert seg["absolute_start_time"] is not None
            by_speaker[seg["speaker"]] = (by_speaker.get(seg["speaker"], "") + " " + seg["text"]).strip()
        if segments and all(seg.get("completed") is not False for seg in segments):
            break
        await asyncio.sleep(1)
    return by_speaker


async def test_bot_joins_simulated_meeting_and_transcript_arrives(
    stack: Stack, api_key: str, simulator: SimulatorServer
):
    native = "abc-defg-hij"
    headers = {"X-API-Key": api_key}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=headers, timeout=30) as c:
        # The WebSocket subscription needs the meeting row, so create the bot first, then follow it.
        created = await c.post(
            "/bots",
            json={
                "platform": "google_meet",
                "native_meeting_id": native,
                "bot_name": "Vexa E2E",
                "language": "en",
            },
        )
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "requested"
        ready = asyncio.Event()
        follower = asyncio.create_task(_statuses_until_done(stack.gateway_url, api_key, native, ready, 240))
        statuses = await follower
        names = [s["status"] for s in statuses]
        assert names[-1] == "completed", statuses
        assert "active" in names
        assert names.index("active") < names.index("completed")

        state = simulator.state(native)
        assert state is not None and state["admitted"] and state["bot_name"] == "Vexa E2E"
        assert state["bot_mic_muted"] and state["bot_camera_off"]

        by_speaker = await _final_text_by_speaker(c, native, 60)
        assert set(by_speaker) == {"Alice", "Bob"}, by_speaker
        for name, text in SCRIPT.items():
            assert wer(text, by_speaker[name]) < WER_BOUND, (name, by_speaker[name])
        assert (await c.get(f"/transcripts/google_meet/{native}")).json()["status"] == "completed"

        meetings = (await c.get("/meetings")).json()["meetings"]
        done = next(m for m in meetings if m["native_meeting_id"] == native)
        assert {"Alice", "Bob"} <= set(done["data"].get("participants", []))
        assert "en" in done["data"].get("languages", [])

        # After the meeting: the recording, then the final transcript, served by default.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = await _wait_meeting(c, native, ("completed",), 5)
            if (done["data"].get("final_transcript") or {}).get("status") in ("completed", "failed"):
                break
            await asyncio.sleep(1)
        assert done["data"]["final_transcript"]["status"] == "completed", done["data"]
        [recording] = [
            r for r in (await c.get("/recordings")).json()["recordings"] if r["meeting_id"] == done["id"]
        ]
        tracks = {m["metadata"].get("participant") for m in recording["media_files"]}
        assert recording["status"] == "completed" and tracks == {None, "Alice", "Bob"}
        final = await _final_text_by_speaker(c, native, 10, source="final")
        assert set(final) == {"Alice", "Bob"}, final
        live_wer = wer(" ".join(SCRIPT.values()), " ".join(by_speaker[n] for n in SCRIPT))
        final_wer = wer(" ".join(SCRIPT.values()), " ".join(final[n] for n in SCRIPT))
        # On 29 words of clean synthetic speech both are near perfect (one word is 0.034): the final
        # one (base, the default after a tiny live model) may not be worse by more than two words
        # (base heard "The budget" as "A budget" on this espeak voice in 2 of 8 runs on 2026-12-06,
        # the live tiny.en text perfect each time; one word of slack failed CI once). The gain itself
        # is asserted on noisy real speech in test_e2e_final_transcript.py.
        assert final_wer <= live_wer + 0.07, (final_wer, live_wer, final, by_speaker)


async def test_delete_bot_makes_it_leave_and_duplicates_are_refused(
    stack: Stack, api_key: str, simulator: SimulatorServer
):
    native = "xyz-abcd-efg"
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers={"X-API-Key": api_key}, timeout=30) as c:
        body = {"platform": "google_meet", "native_meeting_id": native}
        answers = await asyncio.gather(*(c.post("/bots", json=body) for _ in range(4)))
        codes = sorted(a.status_code for a in answers)
        assert codes == [201, 409, 409, 409], [a.text for a in answers]

        meeting = await _wait_meeting(c, native, ("active", "completed", "failed"), 60)
        assert meeting["status"] == "active", meeting

        stopped = await c.delete(f"/bots/google_meet/{native}")
        assert stopped.status_code == 202, stopped.text
        meeting = await _wait_meeting(c, native, ("completed", "failed"), 60)
        assert meeting["status"] == "completed", meeting
        assert meeting["data"].get("completion_reason") == "stopped"
        assert simulator.state(native)["bot_left"]

        # A finished meeting frees the slot: the same native id can be requested again.
        again = await c.post("/bots", json=body)
        assert again.status_code == 201, again.text
        assert (await c.delete(f"/bots/google_meet/{native}")).status_code == 202


async def test_host_removes_bot(stack: Stack, api_key: str, simulator: SimulatorServer):
    native = "rem-ovet-est"
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers={"X-API-Key": api_key}, timeout=30) as c:
        assert (
            await c.post("/bots", json={"platform": "google_meet", "native_meeting_id": native})
        ).status_code == 201
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (simulator.state(native) or {}).get("admitted"):
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)
        async with httpx.AsyncClient(base_url=simulator.base_url) as host:
            assert (await host.post("/_sim/remove-bot", params={"meeting": native})).status_code == 200
        meeting = await _wait_meeting(c, native, ("completed", "failed"), 60)
        assert meeting["data"].get("completion_reason") == "evicted", meeting


async def test_admission_never_granted(stack: Stack, api_key: str, simulator: SimulatorServer):
    native = "wai-tfor-eve"
    simulator.sim.config.admit_after = -1  # this host never admits anyone (restored below)
    try:
        async with httpx.AsyncClient(
            base_url=stack.gateway_url, headers={"X-API-Key": api_key}, timeout=30
        ) as c:
            assert (
                await c.post("/bots", json={"platform": "google_meet", "native_meeting_id": native})
            ).status_code == 201
            meeting = await _wait_meeting(c, native, ("completed", "failed"), 90)
    finally:
        simulator.sim.config.admit_after = 1.0
    assert meeting["status"] == "failed", meeting
    assert meeting["data"].get("completion_reason") == "awaiting_admission_timeout"
    assert [t["to"] for t in meeting["data"]["status_transition"]][-2:] == ["awaiting_admission", "failed"]


async def test_meeting_that_does_not_exist(stack: Stack, api_key: str):
    native = "nop-efou-ndx"  # the simulator answers this one with the platform's not-found page
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers={"X-API-Key": api_key}, timeout=30) as c:
        assert (
            await c.post("/bots", json={"platform": "google_meet", "native_meeting_id": native})
        ).status_code == 201
        meeting = await _wait_meeting(c, native, ("completed", "failed"), 90)
    assert meeting["status"] == "failed", meeting
    assert meeting["data"].get("completion_reason") == "meeting_not_found"


async def test_transcription_down_at_start_then_restarted(stack: Stack, api_key: str):
    """The bot buffers audio while the service is away and delivers it after the restart."""
    native = "res-tart-ing"
    transcription = stack.services["transcription"]
    transcription.stop()
    try:
        async with httpx.AsyncClient(
            base_url=stack.gateway_url, headers={"X-API-Key": api_key}, timeout=30
        ) as c:
            assert (
                await c.post("/bots", json={"platform": "google_meet", "native_meeting_id": native})
            ).status_code == 201
            meeting = await _wait_meeting(c, native, ("active", "completed", "failed"), 60)
            assert meeting["status"] == "active", meeting
            await asyncio.sleep(4)  # the first participant is speaking into a dead socket now
            await asyncio.to_thread(transcription.start, 120)
            meeting = await _wait_meeting(c, native, ("completed", "failed"), 120)
            assert meeting["status"] == "completed", meeting
            by_speaker = await _final_text_by_speaker(c, native, 60)
    finally:
        if transcription.proc is None or transcription.proc.poll() is not None:
            transcription.start(120)
    assert set(by_speaker) == {"Alice", "Bob"}, by_speaker
    for name, text in SCRIPT.items():
        assert wer(text, by_speaker[name]) < WER_BOUND, (name, by_speaker[name])
