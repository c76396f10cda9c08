"""Which way the page's audio travels to the bot, with a real Chromium in a SIMULATED meeting.

By default the loopback socket is opened inside a shared worker, where Playwright's driver does
not see it: a socket the page opens itself has every frame it sends reported through the driver
to the bot's Python (``websocket``/``framesent`` events), which is what the worker avoids. A page
whose Content-Security-Policy forbids blob: workers still gets its audio over its own socket.
(A page refusing the socket altogether falls back to the binding: test_bot_mixed_audio.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from bot_test_helpers import bot_config
from playwright.async_api import Browser, Page, Playwright, WebSocket

from vexa.bot.main import Bot
from vexa.bot.settings import BotConfig, BotSettings
from vexa.testing.speech import read_wav, resample, windowed_match

pytestmark = [pytest.mark.slow, pytest.mark.browser]


class WatchedBot(Bot):
    """The real bot; its page's WebSockets (as Playwright reports them) and binding frames are counted."""

    def __init__(self, config: BotConfig, settings: BotSettings) -> None:
        super().__init__(config, settings)
        self.seen: dict[str, int] = {}  # socket URL -> frames Playwright reported sent on it
        self.binding_frames = 0
        on_audio_b64 = self.audio.on_audio_b64

        def through_binding(*args: Any) -> None:
            self.binding_frames += 1
            on_audio_b64(*args)

        self.audio.on_audio_b64 = through_binding  # type: ignore[method-assign]  # read by _launch

    async def _launch(self, pw: Playwright) -> tuple[Browser, Page]:
        browser, page = await super()._launch(pw)
        page.on("websocket", self._watch)
        return browser, page

    def _watch(self, ws: WebSocket) -> None:
        self.seen[ws.url] = 0

        def sent(_payload: str | bytes) -> None:
            self.seen[ws.url] += 1

        ws.on("framesent", sent)


@pytest.mark.parametrize(
    ("csp", "transport"),
    [(None, "worker_socket"), ("worker-src 'self'", "page_socket")],
    ids=["default", "csp-no-blob-workers"],
)
async def test_audio_socket_lives_in_a_shared_worker_unless_the_page_forbids_it(
    csp, transport, participants, alice_wav, bob_wav, simulator_factory, transcription_standin, callbacks
) -> None:
    sim = simulator_factory(
        participants, admit_after=1.0, leave_after_audio=1.5, play_delay=2.0, audio="per_participant", csp=csp
    )
    config = bot_config("google_meet", sim, transcription_standin.url, callbacks.url)
    bot = WatchedBot(config, BotSettings())
    code = await asyncio.wait_for(bot.run(), 90)

    assert code == 0
    assert bot.ingress_url
    audio_sockets = {url: n for url, n in bot.seen.items() if url == bot.ingress_url}
    if csp is None:
        assert audio_sockets == {}, "Playwright's driver relays the audio socket's frames"
    else:
        # The page's own socket: Playwright sees it, and every frame on it (announcements too).
        assert list(audio_sockets) == [bot.ingress_url]
        assert audio_sockets[bot.ingress_url] > 0
    assert bot.audio_transport == transport
    # Either way every frame came over the socket, none through the binding, and it is the speech.
    assert bot.binding_frames == 0
    by_speaker = transcription_standin.by_speaker()
    assert set(by_speaker) == {"Alice", "Bob"}
    for name, wav in (("Alice", alice_wav), ("Bob", bob_wav)):
        stream = bot.audio.streams[f"p:sim-participant-{1 if name == 'Alice' else 2}"]
        audio = np.concatenate([s.audio() for s in by_speaker[name]])
        assert len(audio) == stream.stats.samples_pushed > 0
        data, rate = read_wav(wav)
        windows = windowed_match(resample(data, rate, 16000), audio, window_s=1.0)
        assert sum(r > 0.9 for r in windows) >= len(windows) - 1, (name, windows)
