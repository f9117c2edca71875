"""Tables of evidence: the hub's signing keys, signed records, recalls and deletion requests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.registry.evidence.rules import DELETION_STATES, EVIDENCE_KINDS
from shared.db import Base, check_in, created_now


class HubSigningKey(Base):
    """An ES256 key of the hub for evidence and delivery signatures (not the token key).

    Retired keys keep their public half and stay published: evidence is checked years later.
    The private half is sealed under the key-encryption key ring, bound to the kid."""

    __tablename__ = "hub_signing_keys"
    __table_args__ = (
        CheckConstraint(
            "retired_at IS NOT NULL OR sealed_private_jwk IS NOT NULL", name="active_key_sealed"
        ),
    )

    kid: Mapped[str] = mapped_column(Text, primary_key=True)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSONB)
    sealed_private_jwk: Mapped[str | None] = mapped_column(Text)
    activated_at: Mapped[datetime] = created_now()
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EvidenceRecord(Base):
    """One signed record; `jws` is the whole of it, the other columns index it."""

    __tablename__ = "evidence_records"
    __table_args__ = (
        CheckConstraint(check_in("kind", EVIDENCE_KINDS), name="kind"),
        Index("ix_evidence_records_response", "response_id", "at"),
        Index("ix_evidence_records_delivery", "delivery_id", "at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    kind: Mapped[str] = mapped_column(String(48))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(Text)
    response_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    delivery_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    audit_digest: Mapped[str] = mapped_column(String(64))
    kid: Mapped[str] = mapped_column(ForeignKey("hub_signing_keys.kid"))
    jws: Mapped[str] = mapped_column(Text)


class Recall(Base):
    """A response recalled by its platform or originator, with the reason given."""

    __tablename__ = "recalls"

    response_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("responses.id"), primary_key=True)
    recalled_by: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    recalled_at: Mapped[datetime] = created_now()


class DeletionRequest(Base):
    """An acknowledged delivery that was recalled: its recipient must confirm deletion."""

    __tablename__ = "deletion_requests"
    __table_args__ = (
        CheckConstraint(check_in("state", DELETION_STATES), name="state"),
        Index(
            "ix_deletion_requests_open", "reminded_at", postgresql_where=text("state = 'requested'")
        ),
    )

    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deliveries.id"), primary_key=True)
    response_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("responses.id"))
    jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"))
    state: Mapped[str] = mapped_column(String(16), server_default="requested")
    requested_at: Mapped[datetime] = created_now()
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reminders: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_by_client: Mapped[str | None] = mapped_column(Text)
