"""``vexa serve bot-manager``: run the bot-manager under uvicorn until SIGTERM."""

from __future__ import annotations

from vexa.bot_manager.settings import BotManagerSettings
from vexa.service import serve


def run(host: str = "127.0.0.1", port: int = 8080) -> None:
    """Blocks; uvicorn turns SIGTERM into a graceful shutdown that also stops every bot."""
    from vexa.bot_manager.app import create_app

    settings = BotManagerSettings()
    settings.port = port  # the default BOT_MANAGER_CALLBACK_URL follows the port we really use
    serve("bot-manager", settings, create_app, host, port, timeout_graceful_shutdown=10)
