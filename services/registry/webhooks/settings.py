"""Webhook settings, composed into intake's (registration) and the router's (dispatch).

Both need the key-encryption key ring: intake seals each endpoint's signing secret, the router
opens it to sign. Plain http is refused unless WEBHOOKS_ALLOW_INSECURE_LOOPBACK allows it for
loopback receivers, which development and tests use.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from services.registry.webhooks.rules import RetryPolicy
from shared.keywrap import KeyEncryptionSettings


class WebhookSettings(KeyEncryptionSettings):
    """Who may be called, how often a failed call is retried, and when an endpoint is cut off."""

    webhooks_allow_insecure_loopback: bool = Field(
        default=False, alias="WEBHOOKS_ALLOW_INSECURE_LOOPBACK"
    )
    webhooks_enabled: bool = Field(default=True, alias="WEBHOOKS_ENABLED")
    webhooks_retry_base_seconds: float = Field(default=5, alias="WEBHOOKS_RETRY_BASE_SECONDS", gt=0)
    webhooks_retry_cap_seconds: float = Field(
        default=3600, alias="WEBHOOKS_RETRY_CAP_SECONDS", gt=0
    )
    webhooks_max_attempts: int = Field(default=20, alias="WEBHOOKS_MAX_ATTEMPTS", ge=1)
    webhooks_disable_after_failures: int = Field(
        default=20, alias="WEBHOOKS_DISABLE_AFTER_FAILURES", ge=1
    )
    webhooks_disable_after_seconds: float = Field(
        default=86400, alias="WEBHOOKS_DISABLE_AFTER_SECONDS", ge=0
    )
    webhooks_timeout_seconds: float = Field(
        default=10, alias="WEBHOOKS_TIMEOUT_SECONDS", gt=0, le=60
    )
    # settled messages and their delivery log are forgotten after this (30 days)
    webhooks_log_retention_seconds: float = Field(
        default=30 * 86400, alias="WEBHOOKS_LOG_RETENTION_SECONDS", gt=0
    )
    webhooks_batch: int = Field(default=100, alias="WEBHOOKS_BATCH", ge=1, le=1000)
    webhooks_poll_seconds: float = Field(default=0.5, alias="WEBHOOKS_POLL_SECONDS", gt=0)

    def retry_policy(self) -> RetryPolicy:
        """The backoff and disable policy these settings describe."""
        return RetryPolicy(
            base=timedelta(seconds=self.webhooks_retry_base_seconds),
            cap=timedelta(seconds=self.webhooks_retry_cap_seconds),
            max_attempts=self.webhooks_max_attempts,
            disable_after_failures=self.webhooks_disable_after_failures,
            disable_after=timedelta(seconds=self.webhooks_disable_after_seconds),
        )
