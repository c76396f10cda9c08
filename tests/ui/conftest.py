"""The dashboard in real Chromium against the real stack and a SIMULATED meeting.

One stack for the module (every service its own process, real Whisper tiny.en),
one simulated Google Meet page where Alice and Bob speak, one Chromium. Tests in
test_ui_dashboard.py run in file order and share what earlier ones made (the user,
its key, the meeting), the way a person would use the dashboard.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright
from ui_helpers import ARTIFACTS, CHROMIUM

from vexa.embedded import free_port
from vexa.stack import Stack, StackSettings
from vexa.testing.simulator import SimConfig, SimParticipant, SimulatorServer
from vexa.testing.speech import synthesize

SCRIPT = {
    "Alice": "Good morning everyone. The budget review is on Friday and the numbers look good.",
    "Bob": "Thank you Alice. I will send the hiring plan to the whole team tomorrow morning.",
}


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorServer]:
    folder = tmp_path_factory.mktemp("speech")
    people = [
        SimParticipant(name, synthesize(text, folder / f"{name}.wav", voice=voice))
        for (name, text), voice in zip(SCRIPT.items(), ["en-us", "en-us+m3"], strict=True)
    ]
    # The meeting goes on after the speech, so the test stops the bot itself from the page.
    server = SimulatorServer(
        SimConfig(participants=people, admit_after=1.5, leave_after_audio=120.0), free_port()
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(database_url: str, redis_url: str, simulator: SimulatorServer, tmp_path_factory) -> Iterator[Stack]:
    names = ("GATEWAY", "ADMIN", "BOT_MANAGER", "COLLECTOR", "TRANSCRIPTION", "TRANSCRIPTION_HEALTH")
    ports = {f"{name}_PORT": str(free_port()) for name in names}
    settings = StackSettings(
        DATABASE_URL=database_url, REDIS_URL=redis_url, ADMIN_API_TOKEN="ui-admin-token-0123456789", **ports
    )
    running = Stack(
        settings=settings,
        home=Path(tmp_path_factory.mktemp("vexa-home")),
        extra_env={
            "MEETING_BASE_URL": simulator.base_url,
            "WHISPER_MODEL": "tiny.en",
            "BOT_ADMISSION_TIMEOUT_S": "20",
            "IMMUTABILITY_THRESHOLD": "2",
            "BACKGROUND_TASK_INTERVAL": "1",
        },
    ).start()
    yield running
    running.stop()


@pytest_asyncio.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="module")
def shared() -> dict:
    """What one test leaves for the next (the user's key, the meeting)."""
    return {}
