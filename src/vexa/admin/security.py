"""The admin key check shared by every /admin/* route."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

admin_key_header = APIKeyHeader(
    name="X-Admin-API-Key",
    scheme_name="AdminApiKey",
    auto_error=False,
    description="The deployment's ADMIN_API_TOKEN.",
)


async def require_admin(request: Request, key: str | None = Security(admin_key_header)) -> None:
    """401 without a key, 403 with a wrong one; constant-time comparison so timing leaks nothing."""
    if not key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail="Missing admin API key (X-Admin-API-Key header)"
        )
    expected: str = request.app.state.admin_api_token
    if not _matches(key, expected):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Invalid admin API key")


def _matches(key: str, expected: str | None) -> bool:
    return bool(expected) and hmac.compare_digest(key.encode("utf-8"), str(expected).encode("utf-8"))


async def require_analytics(request: Request, key: str | None = Security(admin_key_header)) -> None:
    """The read-only analytics routes take the admin key or ``ANALYTICS_API_TOKEN`` (upstream's rule)."""
    if not key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail="Missing admin API key (X-Admin-API-Key header)"
        )
    state = request.app.state
    if not (_matches(key, state.admin_api_token) or _matches(key, state.settings.analytics_api_token)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Invalid admin API key")
