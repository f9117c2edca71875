"""Tables of legal requests: the order, its state history, and its durable timers."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Interval,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.registry.requests.rules import (
    REQUEST_STATES,
    REQUEST_TYPES,
    REVIEW_STATES,
    TIMER_KINDS,
    TIMER_POINTS,
)
from shared.db import Base, check_in, created_now


class LegalRequest(Base):
    """An order from an authority to a platform on one of its cases."""

    __tablename__ = "requests"
    __table_args__ = (
        CheckConstraint(check_in("type", REQUEST_TYPES), name="type"),
        CheckConstraint(check_in("state", REQUEST_STATES), name="state"),
        CheckConstraint(check_in("review_state", REVIEW_STATES), name="review_state"),
        Index("ix_requests_platform_created", "platform", "created_at", "id"),
        Index("ix_requests_issued_by_created", "issued_by", "created_at", "id"),
        Index("ix_requests_enforcing_created", "enforcing_jurisdiction", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    issued_by: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"))
    issued_by_client: Mapped[str] = mapped_column(Text)
    platform: Mapped[str] = mapped_column(ForeignKey("platforms.slug"))
    enforcing_jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"))
    type: Mapped[str] = mapped_column(String(24))
    state: Mapped[str] = mapped_column(String(32))
    review_state: Mapped[str] = mapped_column(String(16))
    categories: Mapped[list[str]] = mapped_column(ARRAY(Text))
    selector_hashes: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    # the order names its selectors in clear: the platform needs them to find the data
    selectors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    selectors_masked: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    time_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    time_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    legal_basis: Mapped[str] = mapped_column(Text)
    issuing_authority: Mapped[str] = mapped_column(Text)
    validated_by: Mapped[str | None] = mapped_column(Text)
    follows_request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("requests.id"))
    extended: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused_total: Mapped[timedelta] = mapped_column(Interval, server_default=text("'0'"))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deadline_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    objection_deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    preserved_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = created_now()


class RequestHistory(Base):
    """One step of a request's life: who did what, from which state to which, and why."""

    __tablename__ = "request_history"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("requests.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'"))


class RequestTimer(Base):
    """A reminder or expiry of one window, fired once by whichever scheduler leads."""

    __tablename__ = "request_timers"
    __table_args__ = (
        CheckConstraint(check_in("kind", TIMER_KINDS), name="kind"),
        CheckConstraint(check_in("point", TIMER_POINTS), name="point"),
        UniqueConstraint("request_id", "kind", "point"),
        # the scheduler's probe: unfired timers by due time
        Index("ix_request_timers_due", "fire_at", postgresql_where=text("fired_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    point: Mapped[str] = mapped_column(String(16))
    fire_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    fired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
