"""Tables of the reference data: jurisdictions and platforms."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.registry.reference.rules import JURISDICTION_STATUSES
from shared.db import Base, check_in, created_now


class Jurisdiction(Base):
    """A state taking part: Eurojust member, partner, associated third country, or suspended."""

    __tablename__ = "jurisdictions"
    __table_args__ = (
        CheckConstraint(check_in("status", JURISDICTION_STATUSES), name="status"),
        CheckConstraint("code ~ '^[A-Z]{2}$'", name="code_format"),
    )

    code: Mapped[str] = mapped_column(String(2), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = created_now()


class Platform(Base):
    """An online platform that cases target and that answers legal requests."""

    __tablename__ = "platforms"
    __table_args__ = (CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'", name="slug_format"),)

    slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    legal_rep_jurisdiction: Mapped[str] = mapped_column(ForeignKey("jurisdictions.code"))
    # ES256 public key the platform signs its disclosures with; when set, every submission
    # must carry a valid signature (services.registry.evidence.custody).
    signing_jwk: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    created_at: Mapped[datetime] = created_now()
    updated_at: Mapped[datetime] = created_now()
