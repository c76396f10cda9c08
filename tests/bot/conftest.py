"""Fixtures for the bot tests: synthetic speech, the SIMULATED meeting, recording stand-ins."""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from bot_test_helpers import BOT_TOKEN

from vexa.embedded import free_port
from vexa.testing.simulator import SimConfig, SimParticipant, SimulatorServer
from vexa.testing.simulator_standins import CallbackRecorder, RecordingTranscriptionServer
from vexa.testing.speech import read_wav, resample, synthesize


@pytest.fixture(scope="session")
def speech_dir(tmp_session_dir: Path) -> Path:
    d = tmp_session_dir / "speech"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture(scope="session")
def alice_wav(speech_dir: Path) -> Path:
    """espeak-ng's native 22.05 kHz mono."""
    return synthesize(
        "Hello everyone, this is Alice. The budget review is on Friday.", speech_dir / "alice.wav"
    )


@pytest.fixture(scope="session")
def bob_wav(speech_dir: Path) -> Path:
    """The same kind of speech re-encoded as 44.1 kHz stereo, to cover other WAV shapes."""
    mono = synthesize("Thanks Alice. Bob here, the roadmap looks fine to me.", voice="en-us+m3")
    data, rate = read_wav(mono)
    up = resample(data, rate, 44100)
    stereo = np.repeat((np.clip(up, -1, 1) * 32767).astype("<i2")[:, None], 2, axis=1)
    path = speech_dir / "bob_44k_stereo.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(stereo.tobytes())
    return path


@pytest.fixture(scope="session")
def participants(alice_wav: Path, bob_wav: Path) -> list[SimParticipant]:
    return [SimParticipant("Alice", alice_wav), SimParticipant("Bob", bob_wav)]


@pytest.fixture
def simulator_factory() -> Iterator:
    """``make(participants, admit_after=..., leave_after_audio=...)`` -> a started SimulatorServer."""
    started: list[SimulatorServer] = []

    def make(people: list[SimParticipant], **kwargs: float) -> SimulatorServer:
        server = SimulatorServer(SimConfig(participants=people, **kwargs), free_port()).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest_asyncio.fixture
async def transcription_standin() -> AsyncIterator[RecordingTranscriptionServer]:
    """A recording STAND-IN for the transcription service (the real one is tested in its own area)."""
    server = await RecordingTranscriptionServer(free_port()).start()
    yield server
    await server.stop()


@pytest.fixture
def callbacks() -> Iterator[CallbackRecorder]:
    """A recording STAND-IN for the bot-manager's status callback endpoint."""
    recorder = CallbackRecorder(free_port(), token=BOT_TOKEN).start()
    yield recorder
    recorder.stop()
