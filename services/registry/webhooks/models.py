"""Tables of the webhooks: endpoints, the messages queued for each, and the delivery log.

A message row exists once per (endpoint, message id): the outbox trigger of migration 0011
queues one for every inbox event of the endpoint's jurisdiction while the endpoint is active,
and a re-published delivery (same id) is not queued twice. The attempt log holds outcomes
only (status code, error class, timing), never what was sent.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.registry.webhooks.rules import ENDPOINT_STATES, MESSAGE_STATES
from shared.db import Base, check_in, created_now


class WebhookEndpoint(Base):
    """An HTTPS endpoint of one jurisdiction; its signing secret is sealed at rest."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        CheckConstraint(check_in("state", ENDPOINT_STATES), name="state"),
        CheckConstraint("consecutive_failures >= 0", name="consecutive_failures"),
        Index("ix_webhook_endpoints_jurisdiction_state", "jurisdiction", "state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"))
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(24), server_default="pending_approval")
    sealed_secret: Mapped[str] = mapped_column(Text)
    created_by_client: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_now()
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    approved_by: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookMessage(Base):
    """One inbox event owed to one endpoint; `message_id` is the webhook-id receivers dedupe on
    (the delivery id for a delivery, the event id otherwise)."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        CheckConstraint(check_in("state", MESSAGE_STATES), name="state"),
        CheckConstraint("attempts >= 0", name="attempts"),
        UniqueConstraint("endpoint_id", "message_id"),
        Index(
            "ix_webhook_messages_due",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
        ),
        Index("ix_webhook_messages_created_at", "created_at", postgresql_using="brin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoints.id"))
    message_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_type: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    state: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = created_now()
    created_at: Mapped[datetime] = created_now()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookAttempt(Base):
    """The delivery log: one row per call, its outcome and nothing of its content."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_message", "message_row_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    message_row_id: Mapped[int] = mapped_column(ForeignKey("webhook_messages.id"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoints.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error_class: Mapped[str | None] = mapped_column(String(64))
    duration_ms: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
