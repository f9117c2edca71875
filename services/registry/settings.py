"""The registry process's settings, composed from the shared pieces, built only at the entry point.

The registry API never hashes selectors, so it needs no selector key; it reads the outbox, so it
shares the topic namespace with the services that write there.
"""

from __future__ import annotations

from pydantic import Field

from shared.ratelimit import WriteLimitSettings
from shared.settings import CommonSettings, DatabaseSettings, KafkaSettings, OAuthSettings


class RegistrySettings(
    CommonSettings, DatabaseSettings, KafkaSettings, OAuthSettings, WriteLimitSettings
):
    """Where the coordinator and admin APIs listen, and how the live stream is bounded."""

    host: str = Field(default="127.0.0.1", alias="REGISTRY_HOST")
    port: int = Field(default=8001, alias="REGISTRY_PORT")
    max_body_bytes: int = Field(default=64 * 1024, alias="REGISTRY_MAX_BODY_BYTES", ge=1024)
    docs_enabled: bool = Field(default=True, alias="REGISTRY_DOCS_ENABLED")
    stream_poll_seconds: float = Field(
        default=0.3, alias="REGISTRY_STREAM_POLL_SECONDS", ge=0.05, le=10
    )
    stream_ping_seconds: float = Field(
        default=15, alias="REGISTRY_STREAM_PING_SECONDS", ge=1, le=300
    )
    stream_max_seconds: float = Field(
        default=3600, alias="REGISTRY_STREAM_MAX_SECONDS", ge=1, le=86400
    )
    stream_max_clients: int = Field(default=50, alias="REGISTRY_STREAM_MAX_CLIENTS", ge=1)
    # Open streams one client (and, signed in to the dashboard, one person) may hold at once.
    stream_max_per_client: int = Field(default=5, alias="REGISTRY_STREAM_MAX_PER_CLIENT", ge=1)
    # The dashboard's public OAuth client at the issuer (PKCE, no secret).
    dashboard_client_id: str = Field(default="dashboard", alias="DASHBOARD_CLIENT_ID")
