"""The bot's own Chromium driver (vexa.bot.browser, .page, .cdp) against a real headless Chromium.

What the platform adapters rely on: landmarks found by CSS, ``text=`` and ``:has-text()`` only
while visible; clicks and typing arriving as a person's (trusted) input; navigation telling HTTP
and network failures apart; bindings carrying arguments to Python; a launch that fails saying
what to do; no Chromium left behind when the bot process is killed; and the capture script's two
ways of tapping a page's audio (the capture worker, and the AudioWorklet's render size).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import glob
import http.server
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote

import numpy as np
import pytest
import pytest_asyncio

from vexa.bot.browser import PROFILE_PREFIX, launch, sweep_orphaned_profiles
from vexa.bot.cdp import CdpError
from vexa.bot.main import CAPTURE_JS
from vexa.bot.page import Page, PageError
from vexa.bot.platforms import ADAPTERS
from vexa.bot.settings import BotSettings
from vexa.ports import free_port

pytestmark = [pytest.mark.slow, pytest.mark.browser]

LANDMARKS = """<!doctype html><body>
<div id="ended" style="display:none">The call has ended</div>
<button id="ask">Ask   to
  JOIN</button>
<span style="visibility:hidden">Invisible words</span>
<div><p>You've been <b>removed</b> from the meeting</p></div>
<input aria-label="Your name" value="old name">
<div id="host"></div>
<script>
  document.getElementById("host").attachShadow({ mode: "open" }).innerHTML =
    '<button aria-label="Leave call">Leave</button><p>Someone will let you in shortly</p>';
  window.clicks = [];
  window.typed = [];
  document.getElementById("ask").addEventListener("click", (e) => window.clicks.push(e.isTrusted));
  document.querySelector("input").addEventListener("input", (e) => window.typed.push(e.isTrusted));
</script>
</body>"""


def data_url(html: str) -> str:
    return "data:text/html," + quote(html)


@pytest_asyncio.fixture
async def page() -> AsyncIterator[Page]:
    browser = await launch(BotSettings())
    try:
        yield await browser.new_page()
    finally:
        await browser.close()


async def test_landmarks_are_found_by_css_text_and_has_text_only_while_visible(page: Page) -> None:
    await page.goto(data_url(LANDMARKS))
    assert await page.first_visible('input[aria-label="Your name"]') == 0
    # Case and runs of whitespace do not matter; the text may span child elements.
    assert await page.first_visible(('button:has-text("Ask to join")',)) == 0
    assert await page.first_visible(("text=no such words", "text=You've been removed from the meeting")) == 1
    # Inside an open shadow root, by CSS and by text.
    assert await page.visible('button[aria-label="Leave call"]')
    assert await page.visible(("text=someone will let you in shortly",))
    # display:none and visibility:hidden count as not showing; so does a selector matching nothing.
    assert await page.first_visible(("text=The call has ended", "text=Invisible words", "#absent")) is None
    await page.evaluate("() => { document.getElementById('ended').style.display = 'block'; }")
    assert await page.visible(("text=The call has ended",))
    assert await page.wait_visible("#late", 0.3) is False
    await page.evaluate(
        "() => setTimeout(() => document.body.insertAdjacentHTML('beforeend', '<b id=late>x</b>'), 200)"
    )
    assert await page.wait_visible("#late", 5) is True


async def test_clicks_and_typing_reach_the_page_as_a_persons_input(page: Page) -> None:
    await page.goto(data_url(LANDMARKS))
    assert await page.click(('button:has-text("Ask to join")',)) is True
    assert await page.evaluate("() => window.clicks") == [True]
    assert await page.click(("text=The call has ended",)) is False, "a hidden element is not clicked"
    assert await page.fill('input[aria-label="Your name"]', "Vexa Bot") is True
    assert await page.evaluate("() => document.querySelector('input').value") == "Vexa Bot"
    assert await page.evaluate("() => window.typed") == [True]
    assert await page.fill("#absent", "x") is False


@pytest.fixture
def not_found_server(tmp_path) -> Iterator[str]:
    """A plain HTTP server over an empty folder: every path is a 404."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_navigation_tells_http_status_from_network_errors(page: Page, not_found_server: str) -> None:
    assert await page.goto(f"{not_found_server}/no-such-meeting") == 404
    with pytest.raises(PageError, match="net::ERR_CONNECTION_REFUSED"):
        await page.goto(f"http://127.0.0.1:{free_port()}/")
    with pytest.raises(PageError, match="script failed: Error: boom"):
        await page.evaluate("() => { throw new Error('boom'); }")


@pytest.mark.parametrize("render_ms", [10, 100])
async def test_the_capture_context_renders_as_much_at_a_time_as_asked(
    page: Page, not_found_server: str, render_ms: int
) -> None:
    """BOT_CAPTURE_RENDER_MS reaches the page's capture context as its latencyHint."""
    await page.add_init_script(CAPTURE_JS.read_text())
    await page.goto(f"{not_found_server}/meeting")
    adapter = ADAPTERS["google_meet"](page, f"{not_found_server}/meeting", "Vexa Bot")
    assert (
        await adapter.start_capture(per_participant=False, render_ms=render_ms, path="worklet") == "binding"
    )
    path, render_s = await adapter.capture_path()
    assert path == "worklet"
    assert abs(render_s - render_ms / 1000) < 0.01


TWO_TRACKS = """<!doctype html><body><audio id="a"></audio><audio id="b"></audio><script>
  // Two remote streams on elements of no participant: one tone each, 0.6 s long, overlapping by
  // 0.2 s; nothing plays into a stream before or after its tone, so it delivers nothing then.
  window.startTones = () => {
    const ctx = new AudioContext();
    const play = (id, hz, at) => {
      const dest = ctx.createMediaStreamDestination();
      const el = document.getElementById(id);
      el.srcObject = dest.stream;
      el.play();
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = hz;
      gain.gain.value = 0.4;
      osc.connect(gain).connect(dest);
      osc.start(ctx.currentTime + at);
      osc.stop(ctx.currentTime + at + 0.6);
    };
    play("a", 440, 1.5);
    play("b", 1000, 1.9);
    return Date.now();
  };
</script></body>"""


def _tone_level(audio: np.ndarray, at_s: float, hz: float) -> float:
    """Amplitude of a ``hz`` sine in the 0.1 s of ``audio`` from ``at_s`` (16 kHz)."""
    piece = audio[round(at_s * 16000) :][:1600]
    t = np.arange(len(piece)) / 16000
    return float(2 * abs(np.dot(piece, np.exp(-2j * np.pi * hz * t))) / len(piece))


async def test_the_capture_worker_mixes_a_taps_tracks_on_their_timeline(
    page: Page, not_found_server: str, tmp_path
) -> None:
    """Two streams of one tap, each delivering only while its tone plays: the worker lays each
    where it was played, adds the overlap, sends the silence around them on time, and dates it."""
    frames: list[tuple[bytes, float]] = []
    await page.expose("__vexaAudio", lambda key, name, pid, data, end_ms: frames.append((data, end_ms)))
    await page.add_init_script(CAPTURE_JS.read_text())
    (tmp_path / "tones.html").write_text(TWO_TRACKS)
    await page.goto(f"{not_found_server}/tones.html")
    started_ms = await page.evaluate("() => window.startTones()")
    adapter = ADAPTERS["google_meet"](page, f"{not_found_server}/tones.html", "Vexa Bot")
    assert await adapter.start_capture(per_participant=False) == "binding"
    assert await adapter.capture_path() == ("track", 0.0)
    await asyncio.sleep(3.5)
    assert frames, "no audio came from the page"
    audio = np.concatenate([np.frombuffer(base64.b64decode(d), "<i2") for d, _ in frames]) / 32768
    end_ms = frames[-1][1]
    # Every frame is dated by its last sample, one after the other on one timeline.
    ends = np.array([e for _, e in frames])
    assert np.allclose(np.diff(ends), 100, atol=0.01), np.diff(ends)
    # Where the tones are, in seconds of the page's clock from startTones.
    origin_s = (end_ms - started_ms) / 1000 - len(audio) / 16000
    at = lambda s: s - origin_s  # noqa: E731
    assert _tone_level(audio, at(1.6), 440) > 0.3 and _tone_level(audio, at(1.6), 1000) < 0.02
    assert _tone_level(audio, at(1.95), 440) > 0.3 and _tone_level(audio, at(1.95), 1000) > 0.3
    assert _tone_level(audio, at(2.3), 1000) > 0.3 and _tone_level(audio, at(2.3), 440) < 0.02
    for quiet in (1.2, 2.7):
        assert np.abs(audio[round(at(quiet) * 16000) :][:1600]).max() < 0.01, quiet
    # Each tone starts where it was played, within 40 ms (-15 to +10 ms measured).
    for hz, start in ((440, 1.5), (1000, 1.9)):
        level = [_tone_level(audio, at(start - 0.2) + i / 1000, hz) for i in range(0, 400, 5)]
        onset = start - 0.2 + next(i for i, v in enumerate(level) if v > 0.2) * 0.005 + 0.05
        assert abs(onset - start) <= 0.04, (hz, onset)


async def test_a_binding_carries_its_arguments_to_python(page: Page, caplog) -> None:
    calls: list[tuple[object, ...]] = []
    await page.expose("__vexaTest", lambda *args: calls.append(args))
    await page.goto(data_url("<p>binding</p>"))  # bindings reach documents loaded after expose()
    await page.evaluate("() => window.__vexaTest(JSON.stringify([1, 'a', {k: [2]}]))")
    await page.evaluate("() => window.__vexaTest('not json')")
    for _ in range(50):
        if calls:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    assert calls == [(1, "a", {"k": [2]})]
    assert "payload is not JSON" in caplog.text


def profiles() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "vexa-bot-chromium-*")))


async def test_a_chromium_that_cannot_start_says_what_to_do(tmp_path) -> None:
    before = profiles()
    with pytest.raises(CdpError, match="BOT_CHROMIUM_PATH"):
        await launch(BotSettings(BOT_CHROMIUM_PATH=str(tmp_path / "no-chromium-here")))
    with pytest.raises(CdpError, match=r"did not start \(exit code 1\)"):
        await launch(BotSettings(BOT_CHROMIUM_PATH="/bin/false"))
    assert profiles() <= before, "a failed launch leaves no profile folder behind"


KILLED_BOT = """
import asyncio
from vexa.bot.browser import launch
from vexa.bot.settings import BotSettings

async def main():
    browser = await launch(BotSettings())
    await browser.new_page()
    print(browser.process.pid, flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan waits for a reaper that a container's PID 1 may not be)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_chromium_exits_when_the_bot_process_is_killed_and_the_next_bot_sweeps_its_profile() -> None:
    """SIGKILL leaves no time to close anything: the pipe's end is what makes Chromium quit, and
    the profile folder it leaves is removed by the next bot's launch (its owner pid is gone)."""
    bot = subprocess.Popen([sys.executable, "-c", KILLED_BOT], stdout=subprocess.PIPE, text=True)
    try:
        assert bot.stdout is not None
        chromium_pid = int(bot.stdout.readline())
        assert running(chromium_pid)
        (left,) = [p for p in profiles() if os.path.basename(p).startswith(f"{PROFILE_PREFIX}{bot.pid}-")]
        bot.send_signal(signal.SIGKILL)
        bot.wait(10)
        deadline = time.monotonic() + 15
        while running(chromium_pid):
            if time.monotonic() > deadline:
                pytest.fail(f"chromium {chromium_pid} still runs 15 s after its bot was killed")
            time.sleep(0.2)
    finally:
        if bot.poll() is None:
            bot.kill()
    assert os.path.isdir(left), "SIGKILL left the profile behind"
    mine = tempfile.mkdtemp(prefix=f"{PROFILE_PREFIX}{os.getpid()}-")  # a live bot's: kept
    try:
        assert left in sweep_orphaned_profiles()
        assert not os.path.exists(left) and os.path.isdir(mine)
    finally:
        os.rmdir(mine)
