"""STAND-IN for a user's webhook server: verifies like a careful integrator's receiver would.

It checks each delivery with the ``standardwebhooks`` package (signature over
``id.timestamp.body``, timestamp within five minutes), answers 401 to anything
that does not verify, and de-duplicates on ``webhook-id`` (at-least-once
delivery means a redelivery is normal; it is acknowledged but not processed
twice). ``fail_first`` makes it answer 500 to its first N requests, to exercise
retries. Serve ``receiver.app`` on 127.0.0.1 with any ASGI server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from standardwebhooks import Webhook, WebhookVerificationError

from vexa.webhooks.signing import signing_key


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class WebhookReceiverStandIn:
    secret: str | None = None
    fail_first: int = 0
    answer: int = 200
    received: list[Received] = field(default_factory=list)
    processed: list[dict[str, Any]] = field(default_factory=list)
    seen_ids: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.app = FastAPI()
        self.app.post("/hook")(self._hook)

    def verify(self, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        """Raises ``WebhookVerificationError`` for a forged, altered or stale delivery."""
        assert self.secret is not None
        return Webhook(signing_key(self.secret)).verify(body, headers)

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        status = self._decide(body, headers)
        self.received.append(Received(headers, body, status))
        return Response(status_code=status)

    def _decide(self, body: bytes, headers: dict[str, str]) -> int:
        if len(self.received) < self.fail_first:
            return 500
        if self.secret is not None:
            try:
                payload = self.verify(body, headers)
            except WebhookVerificationError:
                return 401
        else:
            payload = json.loads(body)
        if self.answer < 300 and headers.get("webhook-id") not in self.seen_ids:
            self.seen_ids.add(headers.get("webhook-id", ""))
            self.processed.append(payload)
        return self.answer

    def events(self) -> list[str]:
        return [p["event_type"] for p in self.processed]
