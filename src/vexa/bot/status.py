"""Status callbacks to the bot-manager (docs/CONTRACTS.md "bot-manager ↔ bot")."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

log = logging.getLogger("vexa.bot.status")

TERMINAL = {"completed", "failed"}


class StatusReporter:
    """POSTs ``{meeting_id, status, reason?, details?, participants?}`` with ``X-Bot-Token``.

    Retries a few times: a terminal status that never arrives leaves the meeting
    "active" until the manager notices the process is gone.
    """

    def __init__(self, callback_url: str | None, token: str | None, meeting_id: int | str) -> None:
        self.url = f"{callback_url.rstrip('/')}/bots/internal/callback/status" if callback_url else None
        self.token = token
        self.meeting_id = meeting_id
        self.history: list[str] = []

    async def send(
        self,
        status: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        participants: list[str] | None = None,
    ) -> bool:
        self.history.append(status)
        log.info("status %s%s", status, f" ({reason})" if reason else "")
        if self.url is None:
            return False
        body: dict[str, Any] = {"meeting_id": self.meeting_id, "status": status}
        if reason:
            body["reason"] = reason
        if details:
            body["details"] = details
        if participants is not None:
            body["participants"] = participants
        headers = {"X-Bot-Token": self.token or ""}
        attempts = 5 if status in TERMINAL else 3
        async with httpx.AsyncClient(timeout=5.0) as client:
            for attempt in range(attempts):
                try:
                    response = await client.post(self.url, json=body, headers=headers)
                    if response.status_code < 500:
                        if response.status_code >= 400:
                            log.warning("status callback %s refused: HTTP %d", status, response.status_code)
                        return response.status_code < 400
                except httpx.HTTPError as exc:
                    log.warning("status callback %s failed (%s)", status, type(exc).__name__)
                await asyncio.sleep(0.5 * 2**attempt)
        return False
