"""admin-api settings: upstream Vexa's ``ADMIN_API_TOKEN`` plus the shared stores."""

from __future__ import annotations

from pydantic import Field

from vexa.config import DataSettings
from vexa.webhooks.settings import WebhookSettings


class AdminSettings(DataSettings, WebhookSettings):
    """The admin key is required: an admin API without one would be open to anyone."""

    admin_api_token: str | None = Field(
        None,
        alias="ADMIN_API_TOKEN",
        description="Value every /admin/* request must send as X-Admin-API-Key.",
    )

    analytics_api_token: str | None = Field(
        None,
        alias="ANALYTICS_API_TOKEN",
        description="Optional read-only key for the /admin/stats and /admin/analytics routes.",
    )

    def require_admin_token(self) -> str:
        """The token, or a RuntimeError that tells the operator what to set."""
        token = (self.admin_api_token or "").strip()
        if not token:
            raise RuntimeError(
                "ADMIN_API_TOKEN is not set: the admin API refuses to start without it. "
                "Set ADMIN_API_TOKEN to a long random secret (e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`); `vexa up` generates one for you."
            )
        return token
