"""Which way the page's audio travels to the bot, with a real Chromium in a SIMULATED meeting.

The page sends its frames on its own loopback socket to the bot's Python (vexa.bot.audio_ingress),
and nothing about them crosses the DevTools pipe the bot drives Chromium with: no network events
(the Network domain stays off) and no binding calls. A page refusing the socket falls back to the
binding: test_bot_mixed_audio.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from bot_test_helpers import bot_config

from vexa.bot.browser import Chromium
from vexa.bot.main import Bot
from vexa.bot.page import Page
from vexa.bot.settings import BotConfig, BotSettings
from vexa.testing.speech import read_wav, resample, windowed_match

pytestmark = [pytest.mark.slow, pytest.mark.browser]


class WatchedBot(Bot):
    """The real bot; what its browser sent it over the pipe, and its binding frames, are kept."""

    def __init__(self, config: BotConfig, settings: BotSettings) -> None:
        super().__init__(config, settings)
        self.browser: Chromium | None = None
        self.binding_frames = 0
        on_audio_b64 = self.audio.on_audio_b64

        def through_binding(*args: Any) -> None:
            self.binding_frames += 1
            on_audio_b64(*args)

        self.audio.on_audio_b64 = through_binding  # type: ignore[method-assign]  # read by _open_page

    async def _open_page(self, browser: Chromium) -> Page:
        self.browser = browser
        return await super()._open_page(browser)


async def test_audio_goes_over_the_page_socket_and_never_through_the_devtools_pipe(
    participants, alice_wav, bob_wav, simulator_factory, transcription_standin, callbacks
) -> None:
    sim = simulator_factory(
        participants, admit_after=1.0, leave_after_audio=1.5, play_delay=2.0, audio="per_participant"
    )
    config = bot_config("google_meet", sim, transcription_standin.url, callbacks.url)
    bot = WatchedBot(config, BotSettings())
    code = await asyncio.wait_for(bot.run(), 90)

    assert code == 0
    assert bot.ingress_url and bot.audio_transport == "socket"
    assert bot.binding_frames == 0
    assert bot.browser is not None
    received = bot.browser.cdp.received
    assert received["Runtime.bindingCalled"] > 0, "speaker and participant events do use the pipe"
    assert not [m for m in received if m.startswith("Network.")], received
    by_speaker = transcription_standin.by_speaker()
    assert set(by_speaker) == {"Alice", "Bob"}
    frames = 0
    for name, wav in (("Alice", alice_wav), ("Bob", bob_wav)):
        stream = bot.audio.streams[f"p:sim-participant-{1 if name == 'Alice' else 2}"]
        audio = np.concatenate([s.audio() for s in by_speaker[name]])
        assert len(audio) == stream.stats.samples_pushed > 0
        frames += stream.stats.samples_pushed // (16 * bot.settings.audio_frame_ms)
        data, rate = read_wav(wav)
        windows = windowed_match(resample(data, rate, 16000), audio, window_s=1.0)
        assert sum(r > 0.9 for r in windows) >= len(windows) - 1, (name, windows)
    # Every frame came over the socket; the pipe carried the page's few events, not one per frame.
    assert received["Runtime.bindingCalled"] < frames, (received, frames)
