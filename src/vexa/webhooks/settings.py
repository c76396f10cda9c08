"""Webhook settings, shared by admin-api (checks URLs, sends pings) and the bot-manager (delivers)."""

from __future__ import annotations

from pydantic import Field

from vexa.config import ServiceSettings


class WebhookSettings(ServiceSettings):
    webhook_allow_private_urls: bool = Field(
        False,
        alias="WEBHOOK_ALLOW_PRIVATE_URLS",
        description="Allow webhook URLs on loopback/private/link-local addresses (trusted networks, tests).",
    )
    webhook_legacy_bearer: bool = Field(
        False,
        alias="WEBHOOK_LEGACY_BEARER",
        description="Also send upstream's legacy 'Authorization: Bearer <secret>' (the secret on the wire).",
    )
    webhook_timeout_s: float = Field(10.0, gt=0, alias="WEBHOOK_TIMEOUT_S")
    webhook_retry_base_s: float = Field(1.0, gt=0, alias="WEBHOOK_RETRY_BASE_S")
    webhook_retry_max_delay_s: float = Field(3600.0, gt=0, alias="WEBHOOK_RETRY_MAX_DELAY_S")
    webhook_retry_for_s: float = Field(24 * 3600.0, ge=0, alias="WEBHOOK_RETRY_FOR_S")
