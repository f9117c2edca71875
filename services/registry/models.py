"""The system of record's tables (SQLAlchemy 2 typed mappings).

Constraints make invalid states unrepresentable: enumerations are CHECKed, every reference is a
foreign key, and the pairs that must be unique (one decision per response and jurisdiction, one
link per pair of cases) are unique keys. Alembic migrations are generated from these models.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base

JURISDICTION_STATUSES = ("member", "partner", "associated", "suspended")
CASE_STATUSES = ("open", "suspended", "closed")
HANDLING_CODES = ("H0", "H1", "H2", "H3")
DELIVERY_STATES = ("pending", "published", "acknowledged", "failed")
FANOUT_STATES = ("received", "routed", "completed")
SELECTOR_KINDS = ("phone_number", "account_handle", "group_id", "user_id", "email", "ip_address")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Jurisdiction(Base):
    """A state taking part: Eurojust member, partner, associated third country, or suspended."""

    __tablename__ = "jurisdictions"
    __table_args__ = (
        CheckConstraint(_in("status", JURISDICTION_STATUSES), name="status"),
        CheckConstraint("code ~ '^[A-Z]{2}$'", name="code_format"),
    )

    code: Mapped[str] = mapped_column(String(2), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Platform(Base):
    """An online platform that cases target and that answers legal requests."""

    __tablename__ = "platforms"
    __table_args__ = (CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'", name="slug_format"),)

    slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    legal_rep_jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Case(Base):
    """A criminal case that one jurisdiction opened against one platform."""

    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint(_in("status", CASE_STATUSES), name="status"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("lead_case_id IS NULL OR lead_case_id <> id", name="not_own_lead"),
        UniqueConstraint("opened_by", "reference"),
        # Serves (platform, status) filters, and the router's "lowest open case of each
        # jurisdiction on this platform" as one probe per jurisdiction. Not a partial index on
        # status = 'open': prepared statements bind the status, and a generic plan cannot use
        # a partial index whose predicate it cannot prove.
        Index("ix_cases_platform_status_opener", "platform", "status", "opened_by", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    reference: Mapped[str] = mapped_column(String(64))
    opened_by: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"), index=True)
    platform: Mapped[str] = mapped_column(ForeignKey("platforms.slug"))
    coordinating_jurisdiction: Mapped[str | None] = mapped_column(ForeignKey("jurisdictions.code"))
    lead_case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cases.id"), index=True)
    offence_categories: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    legal_basis: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    emergency: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_by_client: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class CaseSelector(Base):
    """A selector named in a case, kept as a keyed hash for matching and masked for display."""

    __tablename__ = "case_selectors"
    __table_args__ = (
        CheckConstraint(_in("kind", SELECTOR_KINDS), name="kind"),
        UniqueConstraint("case_id", "kind", "value_hash"),
        Index("ix_case_selectors_value_hash", "value_hash"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    value_hash: Mapped[str] = mapped_column(String(64))
    masked: Mapped[str] = mapped_column(Text)


class CaseLink(Base):
    """Two cases of different jurisdictions share a selector on the same platform."""

    __tablename__ = "case_links"
    __table_args__ = (
        CheckConstraint("case_a < case_b", name="ordered_pair"),
        UniqueConstraint("case_a", "case_b"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    case_a: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    case_b: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    platform: Mapped[str] = mapped_column(ForeignKey("platforms.slug"))
    created_at: Mapped[datetime] = _now()


class CooperationResponse(Base):
    """A platform's answer to a legal request; plaintext disclosures are dropped after fan-out."""

    __tablename__ = "responses"
    __table_args__ = (
        CheckConstraint(_in("handling_code", HANDLING_CODES), name="handling_code"),
        CheckConstraint(_in("fanout_state", FANOUT_STATES), name="fanout_state"),
        Index("ix_responses_fanout_state", "fanout_state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    platform: Mapped[str] = mapped_column(ForeignKey("platforms.slug"))
    submitted_by_client: Mapped[str] = mapped_column(Text)
    request_reference: Mapped[str | None] = mapped_column(Text)
    requesting_case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cases.id"))
    scope_case_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)))
    scope_selector_hashes: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    scope_lead_case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cases.id"))
    handling_code: Mapped[str] = mapped_column(String(2))
    disclosures: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB(none_as_null=True))
    disclosure_count: Mapped[int] = mapped_column(Integer)
    emergency: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    fanout_state: Mapped[str] = mapped_column(String(16), server_default="received")
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = _now()
    routed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Delivery(Base):
    """One recipient with standing for one response; its id is derived, so replays converge."""

    __tablename__ = "deliveries"
    __table_args__ = (
        CheckConstraint(_in("state", DELIVERY_STATES), name="state"),
        CheckConstraint("attempts >= 0", name="attempts"),
        UniqueConstraint("response_id", "jurisdiction"),
        Index("ix_deliveries_state_next_attempt", "state", "next_attempt_at"),
        Index("ix_deliveries_jurisdiction_state", "jurisdiction", "state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    response_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("responses.id"))
    jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"))
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"))
    rule: Mapped[str] = mapped_column(String(48))
    detail: Mapped[str] = mapped_column(Text)
    sealed_disclosures: Mapped[str | None] = mapped_column(Text)
    recipient_kid: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = _now()
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by_client: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Exclusion(Base):
    """A jurisdiction considered for a response and refused, with the reason that decided it."""

    __tablename__ = "exclusions"
    __table_args__ = (UniqueConstraint("response_id", "jurisdiction"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    response_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("responses.id"))
    jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"))
    case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cases.id"))
    reason: Mapped[str] = mapped_column(String(48))
    detail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()


class AuditEntry(Base):
    """Append-only, hash-chained record of every state change and routing decision."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class QueuedAuditEntry(Base):
    """An audit entry committed with its change, waiting for the sequencer to chain it.

    Writers only insert here (no lock, no head read); `audit.sequence` moves entries into
    `audit_log` in the order it finds them committed. Rows are never updated in place.
    """

    __tablename__ = "audit_queue"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB)


class OutboxEvent(Base):
    """An event committed with the state change it reports, waiting for the relay to publish."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
        Index("ix_outbox_created_at", "created_at", postgresql_using="brin"),  # retention
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    topic: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now()
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class IdempotencyKey(Base):
    """The first answer to a POST, replayed to retries that carry the same key."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        Index("ix_idempotency_keys_created_at", "created_at", postgresql_using="brin"),
    )

    client_id: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now()
