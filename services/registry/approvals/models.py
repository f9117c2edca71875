"""Table of proposed changes to a jurisdiction's status or public key, awaiting a second admin."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.registry.approvals.rules import CHANGE_STATES
from services.registry.reference.rules import JURISDICTION_STATUSES
from shared.db import Base, check_in, created_now


class PendingChange(Base):
    """One proposal: the status and/or (normalised) public key it would set, and its fate."""

    __tablename__ = "pending_changes"
    __table_args__ = (
        CheckConstraint(check_in("state", CHANGE_STATES), name="state"),
        CheckConstraint(
            f"status IS NULL OR {check_in('status', JURISDICTION_STATUSES)}", name="status"
        ),
        CheckConstraint("status IS NOT NULL OR public_jwk IS NOT NULL", name="changes_something"),
        CheckConstraint(
            "(state = 'pending') = (decided_by IS NULL AND decided_at IS NULL)", name="decided"
        ),
        Index(
            "ix_pending_changes_open",
            "jurisdiction",
            postgresql_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"))
    status: Mapped[str | None] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    state: Mapped[str] = mapped_column(String(16))
    proposed_by: Mapped[str] = mapped_column(Text)
    proposed_at: Mapped[datetime] = created_now()
    decided_by: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
