"""How the bot launches Chromium: the flags capture needs, and the ones that keep a bot lean.

Why a module of its own: the flag set is the bot's memory and CPU budget. Every lean flag
below was measured one at a time by ``bench/bots.py --flags`` (PSS and CPU of the bot's
whole process tree, one bot in a simulated meeting, audio checked sample by sample) and kept
only if it saved something without breaking capture; README "Sizing" has the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import tempfile

from vexa import pids
from vexa.bot.cdp import CdpConnection, CdpError
from vexa.bot.page import Page
from vexa.bot.settings import BotSettings

log = logging.getLogger("vexa.bot.browser")

# Needed for joining and capturing; never dropped.
BASE_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    # WebRTC may only use proxied/loopback routes: the bot never offers host candidates.
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--disable-blink-features=AutomationControlled",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    # The bot runs as root in its container, where Chromium's sandbox cannot start.
    "--no-sandbox",
    # A headless page counts as hidden: without these its timers (the speaker watcher, the audio
    # posts) would be throttled to once a second and its renderer deprioritised.
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--window-size=1280,720",
    "--lang=en-US",
]

# How this process drives the browser: the DevTools protocol on fds 3/4 (vexa.bot.cdp), no tab
# until the bot opens one in a fresh context.
DRIVEN_ARGS = ["--remote-debugging-pipe", "--no-startup-window"]

# Memory/CPU savers (BOT_CHROMIUM_LEAN=true, the default); see the module docstring. Measured and
# NOT kept (no saving, or capture broke in a run): --renderer-process-limit=1 (a bot has one
# renderer anyway), --disable-site-isolation-trials, --disable-features=AudioServiceOutOfProcess
# (capture failed a run under load), --js-flags=--max-old-space-size=64, --js-flags=--lite-mode
# (CPU up), --blink-settings=imagesEnabled=false, --audio-buffer-size=2048 (no CPU saved), and
# --single-process: it saves 60-70 MiB, but with it 3 of 6 runs on a loaded machine lost audio
# windows (0 of 4 without), because the audio thread then competes inside one process with
# everything else.
LEAN_ARGS = [
    # No update checks, sync, component downloads or extension pages: nothing runs that the
    # meeting does not need (memory and background CPU; and no outbound requests of its own).
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-component-extensions-with-background-pages",
    # With the GPU off, Chromium still starts SwiftShader (a software GPU, with Vulkan) in its GPU
    # process; a bot draws nothing anyone sees, and plain software compositing needs none of it:
    # the GPU process drops from ~21 to ~8 MiB of its own pages.
    "--disable-software-rasterizer",
    # Fewer processes, each with its own copy of Chromium's start-up state: no zygotes (renderers are
    # started directly), the compositor's GPU thread and the network service inside the browser
    # process: a bot's tree 305 -> 293 MiB "alone" without zygotes and GPU process, -> 285 MiB with
    # the network service in (bench/bots.py). The renderer and the audio service stay processes.
    "--no-zygote",
    "--in-process-gpu",
    "--enable-features=NetworkServiceInProcess2",
]


def chromium_args(settings: BotSettings) -> list[str]:
    """The command-line flags for this bot's Chromium."""
    lean = LEAN_ARGS if settings.chromium_lean else []
    return [*BASE_ARGS, *lean, *settings.chromium_extra_args]


STDERR_FILE = "chromium-stderr.log"
# A profile folder is named after the bot process that made it: "vexa-bot-chromium-<pid>-<random>".
PROFILE_PREFIX = "vexa-bot-chromium-"


def sweep_orphaned_profiles(folder: str | None = None) -> list[str]:
    """Remove the profile folders of bots that are gone; returns the folders removed.

    ``Chromium.close`` removes a bot's own profile, but a bot that is SIGKILLed (or OOM-killed)
    never gets there, and on a host whose bots share one temporary folder (the process
    orchestrator) each such death would leave tens of MiB behind for good. The next bot to
    start clears them: a folder whose owner pid no longer exists is an orphan (its Chromium
    exits by itself once the DevTools pipe closes). A recycled pid only postpones a sweep.
    """
    folder = folder or tempfile.gettempdir()
    removed = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.startswith(PROFILE_PREFIX) or not entry.is_dir(follow_symlinks=False):
                continue
            owner = entry.name[len(PROFILE_PREFIX) :].split("-", 1)[0]
            if not owner.isdigit() or pids.alive(int(owner)):
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    if removed:
        log.info("removed %d profile folder(s) left by bots that were killed", len(removed))
    return removed


def _last_line(path: str) -> str:
    with contextlib.suppress(OSError), open(path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
        return lines[-1][-300:] if lines else "it printed nothing"
    return "it printed nothing"


def launch_command(settings: BotSettings, profile_dir: str) -> list[str]:
    """The whole command line: the flags above plus how this process drives the browser."""
    shown = ["--headless", "--mute-audio"] if settings.headless else []
    return [
        settings.chromium_path,
        *shown,
        *DRIVEN_ARGS,
        f"--user-data-dir={profile_dir}",
        f"--user-agent={settings.user_agent}",
        *chromium_args(settings),
    ]


class Chromium:
    """One launched Chromium, driven over its DevTools pipe; ``close`` always reaps it."""

    def __init__(self, process: asyncio.subprocess.Process, cdp: CdpConnection, profile_dir: str) -> None:
        self.process = process
        self.cdp = cdp
        self.profile_dir = profile_dir

    async def new_page(self) -> Page:
        """A tab in a fresh browser context (no cookies or storage shared with anything)."""
        context = await self.cdp.send("Target.createBrowserContext", {"disposeOnDetach": True})
        target = await self.cdp.send(
            "Target.createTarget", {"url": "about:blank", "browserContextId": context["browserContextId"]}
        )
        attached = await self.cdp.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self.cdp, attached["sessionId"])
        await page.enable()
        return page

    async def close(self) -> None:
        """Ask the browser to quit; kill it if it does not within 5 s; remove its profile."""
        try:
            if not self.cdp.closed:
                with contextlib.suppress(CdpError, TimeoutError):
                    await asyncio.wait_for(self.cdp.send("Browser.close"), 5)
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                log.warning("chromium did not quit within 5 s: killed")
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        finally:
            self.cdp.close()
            shutil.rmtree(self.profile_dir, ignore_errors=True)
            busiest = ", ".join(f"{name or 'answers'} {n}" for name, n in self.cdp.received.most_common(4))
            log.info(
                "chromium closed; its DevTools pipe carried %d messages (%s)",
                self.cdp.received.total(),
                busiest,
            )


async def launch(settings: BotSettings) -> Chromium:
    """Start Chromium with its DevTools protocol on fds 3 (commands in) and 4 (answers out).

    Chromium reads the pipe from those two fixed fd numbers, which ``subprocess`` cannot map to
    (``pass_fds`` keeps a number, it does not move one), so the child moves them with ``dup2``
    between fork and exec; the pipe ends are first lifted above 10 so the moves cannot collide.
    """
    commands_r, commands_w = os.pipe()
    answers_r, answers_w = os.pipe()
    child_in = fcntl.fcntl(commands_r, fcntl.F_DUPFD_CLOEXEC, 10)
    child_out = fcntl.fcntl(answers_w, fcntl.F_DUPFD_CLOEXEC, 10)
    for fd in (commands_r, answers_w):
        os.close(fd)

    def into_place() -> None:  # runs in the child, after fork, before exec
        os.dup2(child_in, 3)
        os.dup2(child_out, 4)

    sweep_orphaned_profiles()
    profile_dir = tempfile.mkdtemp(prefix=f"{PROFILE_PREFIX}{os.getpid()}-")
    # Chromium's own messages go to a file beside its profile, read back only if it fails to start.
    stderr_path = os.path.join(profile_dir, STDERR_FILE)
    stderr = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        process = await asyncio.create_subprocess_exec(
            *launch_command(settings, profile_dir),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=into_place,
            pass_fds=(3, 4),
        )
    except BaseException as exc:
        for fd in (commands_w, answers_r):
            os.close(fd)
        shutil.rmtree(profile_dir, ignore_errors=True)
        if isinstance(exc, OSError):
            raise CdpError(
                f"cannot run chromium at {settings.chromium_path}: {exc.strerror}; install it "
                "(scripts/setup.sh) or point BOT_CHROMIUM_PATH at it"
            ) from exc
        raise
    finally:
        for fd in (child_in, child_out, stderr):
            os.close(fd)
    cdp = CdpConnection(commands_w, answers_r)
    cdp.start()
    chromium = Chromium(process, cdp, profile_dir)
    try:
        version = await asyncio.wait_for(cdp.send("Browser.getVersion"), 30)
    except (CdpError, TimeoutError) as exc:
        said = _last_line(stderr_path)
        await chromium.close()
        raise CdpError(
            f"chromium ({settings.chromium_path}) did not start (exit code {process.returncode}): {said}"
        ) from exc
    log.info("chromium %s started (pid %d)", version.get("product", "?"), process.pid)
    return chromium
