"""Tables of a fan-out's outcome: one delivery per recipient, one exclusion per refusal."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
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
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.registry.deliveries.rules import DELIVERY_STATES, DeliveryState
from shared.db import Base, check_in, created_now


class Delivery(Base):
    """One recipient with standing for one response; its id is derived, so replays converge."""

    __tablename__ = "deliveries"
    __table_args__ = (
        CheckConstraint(check_in("state", DELIVERY_STATES), name="state"),
        CheckConstraint("attempts >= 0", name="attempts"),
        UniqueConstraint("response_id", "jurisdiction"),
        Index("ix_deliveries_state_next_attempt", "state", "next_attempt_at"),
        Index("ix_deliveries_jurisdiction_state", "jurisdiction", "state"),
        # retention: acknowledged deliveries that still hold a ciphertext
        Index(
            "ix_deliveries_payload_retention",
            "acknowledged_at",
            postgresql_where=text("sealed_disclosures IS NOT NULL"),
        ),
        # the inbox's order: a page is an index walk, not a sort of the jurisdiction's rows
        Index("ix_deliveries_jurisdiction_created", "jurisdiction", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    response_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("responses.id"))
    jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"))
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"))
    rule: Mapped[str] = mapped_column(String(48))
    detail: Mapped[str] = mapped_column(Text)
    sealed_disclosures: Mapped[str | None] = mapped_column(Text)
    recipient_kid: Mapped[str | None] = mapped_column(Text)
    # how many disclosures this recipient's payload holds (minimised); None: all of them
    disclosure_count: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), server_default=DeliveryState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = created_now()
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by_client: Mapped[str | None] = mapped_column(Text)
    # H3: when the recipient accepted the handling conditions (on its acknowledgement)
    conditions_accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
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
    created_at: Mapped[datetime] = created_now()
