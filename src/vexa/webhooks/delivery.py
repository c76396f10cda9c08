"""One HTTP attempt of one delivery: guarded client, signed headers, a classified outcome.

Shared by the bot-manager's retrying worker and admin-api's ``POST
/user/webhook/test`` so a ping is signed and guarded exactly like a real event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from vexa.webhooks.signing import signature_headers
from vexa.webhooks.ssrf import PinnedTransport, Resolver, UnsafeWebhookURL

USER_AGENT = "vexa-webhooks/2"
# Answers worth trying again (upstream's rule: server errors, timeouts and rate limits).
RETRYABLE = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class Attempt:
    status_code: int | None
    error: str | None
    duration_ms: int
    blocked: bool = False

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        if self.ok or self.blocked:
            return False
        return self.status_code is None or self.status_code >= 500 or self.status_code in RETRYABLE


def make_client(
    *, timeout_s: float, allow_private: bool, resolver: Resolver | None = None
) -> httpx.AsyncClient:
    """No redirects (a 30x to an internal address would dodge the guard), no proxies from the environment."""
    return httpx.AsyncClient(
        transport=PinnedTransport(allow_private=allow_private, resolver=resolver),
        timeout=timeout_s,
        follow_redirects=False,
        trust_env=False,
    )


def host_of(url: str | None) -> str | None:
    return urlsplit(url).hostname if url else None


async def attempt(
    client: httpx.AsyncClient,
    url: str,
    secret: str | None,
    msg_id: str,
    event: str,
    body: bytes,
    *,
    legacy_bearer: bool = False,
) -> Attempt:
    """POST once; never raises for network trouble (the outcome says what happened).

    Without a secret (a URL stored before secrets existed, or set by an admin) the
    delivery goes unsigned, as upstream does; ``PUT /user/webhook`` generates one.
    """
    now = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Vexa-Event": event,
        "webhook-id": msg_id,
        "webhook-timestamp": str(now),
    }
    if secret:
        headers.update(signature_headers(secret, msg_id, body, timestamp=now, legacy_bearer=legacy_bearer))
    started = time.monotonic()

    def took() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        response = await client.post(url, content=body, headers=headers)
    except UnsafeWebhookURL as exc:
        return Attempt(None, str(exc), took(), blocked=True)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):  # e.g. stored by hand: retrying cannot help
        return Attempt(None, "the webhook URL is not a valid http(s) URL", took(), blocked=True)
    except httpx.HTTPError as exc:
        return Attempt(None, type(exc).__name__, took())
    code = response.status_code
    return Attempt(code, None if 200 <= code < 300 else f"HTTP {code}", took())
