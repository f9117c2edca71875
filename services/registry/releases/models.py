"""The table of release decisions: one row per delivery, saying why it went out (or not yet)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, Text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.registry.releases.rules import RELEASE_BASES, RELEASE_STATES
from shared.db import Base, check_in, created_now


class Release(Base):
    """The release decision of one delivery: at once (and why), held, released, withheld or
    lapsed; the originator's decisions and reasons stay here for good."""

    __tablename__ = "releases"
    __table_args__ = (
        CheckConstraint(check_in("state", RELEASE_STATES), name="state"),
        CheckConstraint(check_in("basis", RELEASE_BASES), name="basis"),
        # the originator's open decisions, oldest first; and the lapse sweep
        Index("ix_releases_originator_state", "originator", "state", "created_at"),
        Index("ix_releases_state_lapses_at", "state", "lapses_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deliveries.id"), unique=True)
    response_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("responses.id"), index=True)
    jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"))
    requesting_case_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("cases.id"))
    originator: Mapped[str | None] = mapped_column(ForeignKey("jurisdictions.code"))
    state: Mapped[str] = mapped_column(String(16))
    basis: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by_client: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lapses_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_now()
