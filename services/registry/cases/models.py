"""Tables of cases: the case, its hashed selectors, and links between cases."""

from __future__ import annotations

import uuid
from datetime import datetime

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
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.registry.cases.rules import (
    CASE_STATUSES,
    COORDINATION_STATES,
    RELEASE_POLICIES,
    CaseStatus,
)
from services.registry.cases.selectors import SELECTOR_KINDS
from shared.db import Base, check_in, created_now


class Case(Base):
    """A criminal case that one jurisdiction opened against one platform."""

    __tablename__ = "cases"
    __table_args__ = (
        CheckConstraint(check_in("status", CASE_STATUSES), name="status"),
        CheckConstraint(check_in("release_policy", RELEASE_POLICIES), name="release_policy"),
        CheckConstraint(
            check_in("coordination_state", COORDINATION_STATES), name="coordination_state"
        ),
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
    status: Mapped[str] = mapped_column(String(24), server_default=CaseStatus.OPEN.value)
    emergency: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    release_policy: Mapped[str] = mapped_column(String(24), server_default="none")
    coordination_state: Mapped[str | None] = mapped_column(String(16))
    coordination_reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_by_client: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = created_now()


class CaseSelector(Base):
    """A selector named in a case, kept as a keyed hash for matching and masked for display."""

    __tablename__ = "case_selectors"
    __table_args__ = (
        CheckConstraint(check_in("kind", SELECTOR_KINDS), name="kind"),
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
    created_at: Mapped[datetime] = created_now()
    # each opener's consent to exchange references; both set: references are exchanged
    consent_a_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    consent_b_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
