"""``vexa serve bot-manager``: run the bot-manager under uvicorn until SIGTERM."""

from __future__ import annotations

import uvicorn

from vexa.bots.app import create_app
from vexa.bots.settings import BotManagerSettings
from vexa.logs import setup_logging


def run(host: str = "127.0.0.1", port: int = 8080) -> None:
    """Blocks; uvicorn turns SIGTERM into a graceful shutdown that also stops every bot."""
    settings = BotManagerSettings()
    settings.port = port  # the default BOT_MANAGER_CALLBACK_URL follows the port we really use
    setup_logging("bot-manager", settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
