"""A running bot keeps transcribing after its owner revokes and rotates their API key.

Real everything (`vexa up`'s stack, Chromium, tiny.en) against the SIMULATED Google Meet page;
the user side is upstream's unchanged ``vexa-client`` (pip ``vexa-client``), so this also checks
that an upstream client still works against our gateway.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from e2e_helpers import start_stack
from vexa_client import VexaClient
from vexa_client.vexa import VexaClientError

from vexa.embedded import free_port
from vexa.stack import Stack
from vexa.testing.simulator import SimConfig, SimParticipant, SimulatorServer
from vexa.testing.speech import synthesize
from vexa.transcription.wer import wer

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.model, pytest.mark.timeout(600)]

TEXT = "Good morning everyone. The budget review is on Friday and the numbers look good for the year."
NATIVE = "tok-enro-tat"


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorServer]:
    wav = synthesize(TEXT, tmp_path_factory.mktemp("speech") / "alice.wav", voice="en-us")
    config = SimConfig(participants=[SimParticipant("Alice", wav)], admit_after=1.0, leave_after_audio=4.0)
    server = SimulatorServer(config, free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(database_url: str, redis_url: str, simulator: SimulatorServer, tmp_path_factory) -> Iterator[Stack]:
    home = Path(tmp_path_factory.mktemp("vexa-home"))
    running = start_stack(database_url, redis_url, home, simulator.base_url, "tiny.en")
    yield running
    running.stop()


def _until(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _refused_within_a_second(client: VexaClient) -> None:
    deadline = time.monotonic() + 1.0
    while True:
        try:
            client.get_meetings()
        except VexaClientError as exc:
            assert "HTTP Error 403" in str(exc)
            return
        assert time.monotonic() < deadline, "the revoked key still works after a second"
        time.sleep(0.05)


def _meeting(client: VexaClient) -> dict:
    return next((m for m in client.get_meetings() if m["native_meeting_id"] == NATIVE), {})


def test_bot_keeps_transcribing_after_its_owner_revokes_and_rotates_the_key(stack: Stack):
    admin = VexaClient(base_url=stack.gateway_url, admin_key=stack.admin_token)
    user = admin.create_user(email="rotate@example.com", max_concurrent_bots=2)
    first = admin.create_token(user["id"])  # upstream's call: a full key, no expiry
    client = VexaClient(base_url=stack.gateway_url, api_key=first["token"])
    client.request_bot("google_meet", NATIVE, bot_name="Vexa Rotation", language="en")
    _until(lambda: _meeting(client).get("status") == "active", 90, "the bot to be admitted")

    # The owner revokes the key the bot was started with, and rotates to a new one.
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as raw:
        revoked = raw.delete(f"/admin/tokens/{first['id']}", headers={"X-Admin-API-Key": stack.admin_token})
    assert revoked.status_code == 204
    revoked_at = datetime.now(UTC)
    _refused_within_a_second(client)
    client.set_api_key(admin.create_token(user["id"])["token"])

    done = _until(
        lambda: _meeting(client).get("status") in ("completed", "failed") and _meeting(client), 180, "end"
    )
    assert done["status"] == "completed", done

    def final_segments() -> list[dict]:
        segments = client.get_transcript("google_meet", NATIVE)["segments"]
        return segments if segments and all(s.get("completed") is not False for s in segments) else []

    segments = _until(final_segments, 60, "the final transcript")
    text = " ".join(s["text"] for s in segments)
    assert wer(TEXT, text) < 0.35, text
    # Words spoken after the revocation were transcribed and stored (the bot's token is its own).
    later = [
        s
        for s in segments
        if datetime.fromisoformat(s["absolute_end_time"]) > revoked_at + timedelta(seconds=1)
    ]
    assert later, (revoked_at, [(s["absolute_start_time"], s["text"]) for s in segments])
