"""How the bot launches Chromium: lean flags on by default, capture flags always, the binary choice."""

from __future__ import annotations

import os

import numpy as np

from vexa.bot.browser import BASE_ARGS, LEAN_ARGS, chromium_args
from vexa.bot.main import pcm16_to_float32
from vexa.bot.settings import FULL_CHROMIUM, HEADLESS_SHELL, BotSettings


def test_lean_flags_are_default_and_can_be_turned_off(monkeypatch) -> None:
    lean = chromium_args(BotSettings())
    assert lean[: len(BASE_ARGS)] == BASE_ARGS and set(LEAN_ARGS) <= set(lean)
    assert "--single-process" not in lean  # measured: it loses audio under load
    monkeypatch.setenv("BOT_CHROMIUM_LEAN", "false")
    monkeypatch.setenv("BOT_CHROMIUM_EXTRA_ARGS", '["--lang=de"]')  # JSON, as documented
    assert chromium_args(BotSettings()) == [*BASE_ARGS, "--lang=de"]


def test_headless_bots_use_the_headless_shell_and_headed_ones_full_chromium() -> None:
    expected = HEADLESS_SHELL if os.path.exists(HEADLESS_SHELL) else FULL_CHROMIUM
    assert BotSettings().chromium_path == expected
    assert BotSettings(BOT_HEADLESS=False).chromium_path == FULL_CHROMIUM
    assert BotSettings(BOT_CHROMIUM_PATH="/opt/chrome").chromium_path == "/opt/chrome"


def test_pcm16_frames_become_float32_within_one_step() -> None:
    samples = np.array([0, 1, -1, 32767, -32768, 16384], dtype="<i2")
    out = np.frombuffer(pcm16_to_float32(samples.tobytes()), dtype="<f4")
    assert out.dtype == np.float32 and len(out) == len(samples)
    assert np.allclose(out, samples / 32768.0) and out.min() >= -1.0 and out.max() < 1.0
