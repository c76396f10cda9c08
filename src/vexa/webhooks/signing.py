"""Signature headers of one delivery: Standard Webhooks plus upstream Vexa's own pair.

Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature:
v1,<base64 HMAC-SHA256 over "id.timestamp.body">``) is produced with the
``standardwebhooks`` package, so any of its verifiers checks our deliveries and
refuses a replay (timestamp outside five minutes) or an altered body. Upstream's
``X-Webhook-Signature: sha256=<hex HMAC over "timestamp.body">`` and
``X-Webhook-Timestamp`` ride along for receivers written for upstream.

The key: a ``whsec_<base64>`` secret (what we generate) is used as Standard
Webhooks defines it, the decoded bytes; any other secret (upstream lets users
choose one) is used as its UTF-8 bytes, which a receiver passes to
``Webhook(secret.encode())``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_key(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode("utf-8")


def verifier(secret: str) -> Webhook:
    """What a receiver builds to check our deliveries (used by the tests and the docs' example)."""
    return Webhook(signing_key(secret))


def signature_headers(
    secret: str, msg_id: str, body: bytes, *, timestamp: int, legacy_bearer: bool = False
) -> dict[str, str]:
    """The headers for one attempt; the timestamp is fresh per attempt, the id is the event's."""
    standard = Webhook(signing_key(secret)).sign(
        msg_id, datetime.fromtimestamp(timestamp, tz=UTC), body.decode("utf-8")
    )
    upstream = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard,
        "X-Webhook-Signature": f"sha256={upstream}",
        "X-Webhook-Timestamp": str(timestamp),
    }
    if legacy_bearer:  # upstream's legacy check; off by default because it puts the secret on the wire
        headers["Authorization"] = f"Bearer {secret}"
    return headers


def mask(secret: str | None) -> str | None:
    """Enough to tell which secret is set, never enough to use it (upstream's ``********abcd``)."""
    if not secret:
        return None
    return "********" + (secret[-4:] if len(secret) > 8 else "")
