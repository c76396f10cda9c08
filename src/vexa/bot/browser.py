"""How the bot launches Chromium: the flags capture needs, and the ones that keep a bot lean.

Why a module of its own: the flag set is the bot's memory and CPU budget. Every lean flag
below was measured one at a time by ``bench/bots.py --flags`` (PSS and CPU of the bot's
whole process tree, one bot in a simulated meeting, audio checked sample by sample) and kept
only if it saved something without breaking capture; README "Sizing" has the figures.
"""

from __future__ import annotations

import os

from vexa.bot.settings import BotSettings

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
]

# Memory/CPU savers (BOT_CHROMIUM_LEAN=true, the default); see the module docstring. Measured and
# NOT kept (no saving, or capture broke in a run): --renderer-process-limit=1 (a bot has one
# renderer anyway), --in-process-gpu (moves the GPU process's memory, does not shrink it),
# --no-zygote, --disable-site-isolation-trials, --disable-features=AudioServiceOutOfProcess
# (capture failed a run under load), --js-flags=--max-old-space-size=64, --js-flags=--lite-mode
# (CPU up), --blink-settings=imagesEnabled=false, --mute-audio, and --single-process: it saves
# 60-70 MiB, but with it 3 of 6 runs on a loaded machine lost audio windows (0 of 4 without),
# because the audio thread then competes inside one process with everything else.
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
]


# Playwright's driver is a node process beside Chromium; its default young generation (16 MiB
# semi-spaces) and heap headroom are sized for test suites driving many pages, not one. Without
# the JIT (V8's interpreter only) it maps ~11 MiB less: a bot's driver relays a few small messages
# a second now that audio bypasses it, so compiled code buys it nothing measurable.
DRIVER_NODE_OPTIONS = "--max-semi-space-size=1 --max-old-space-size=64 --jitless"


def driver_environment(settings: BotSettings) -> None:
    """Set NODE_OPTIONS for the Playwright driver this process starts (it inherits our env)."""
    if settings.chromium_lean and "NODE_OPTIONS" not in os.environ:
        os.environ["NODE_OPTIONS"] = DRIVER_NODE_OPTIONS


def chromium_args(settings: BotSettings) -> list[str]:
    """The command-line flags for this bot's Chromium."""
    lean = LEAN_ARGS if settings.chromium_lean else []
    return [*BASE_ARGS, *lean, *settings.chromium_extra_args]
