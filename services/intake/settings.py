"""Intake's settings, composed from the shared pieces and built only at the entry point."""

from __future__ import annotations

from pydantic import Field

from services.registry.webhooks.settings import WebhookSettings
from shared.ratelimit import WriteLimitSettings
from shared.settings import (
    CommonSettings,
    DatabaseSettings,
    KafkaSettings,
    OAuthSettings,
    SelectorSettings,
)


class IntakeSettings(
    CommonSettings,
    DatabaseSettings,
    KafkaSettings,
    OAuthSettings,
    SelectorSettings,
    WriteLimitSettings,
    WebhookSettings,
):
    """Where intake listens and the limits it enforces on callers."""

    host: str = Field(default="127.0.0.1", alias="INTAKE_HOST")
    port: int = Field(default=8000, alias="INTAKE_PORT")
    max_body_bytes: int = Field(default=1024 * 1024, alias="INTAKE_MAX_BODY_BYTES", ge=1024)
    docs_enabled: bool = Field(default=True, alias="INTAKE_DOCS_ENABLED")
    # uvicorn worker processes: one per core intake is given in production; 1 in dev, where
    # PostgreSQL, the broker and the other services share the same cores.
    workers: int = Field(default=1, alias="INTAKE_WORKERS", ge=1, le=64)
    # Intake's load is many short transactions at once. Twenty kept-open connections and no
    # overflow allow as many as the shared default (ten plus ten) without opening and closing
    # the last ten on every burst, each a new backend and a new statement cache.
    database_pool_size: int = Field(default=20, alias="DATABASE_POOL_SIZE", ge=1, le=100)
    database_max_overflow: int = Field(default=0, alias="DATABASE_MAX_OVERFLOW", ge=0, le=100)
