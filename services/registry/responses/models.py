"""The table of cooperation responses; plaintext is dropped after fan-out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.registry.deliveries.rules import FANOUT_STATES, FanoutState
from services.registry.responses.rules import HANDLING_CODES
from shared.db import Base, check_in, created_now


class CooperationResponse(Base):
    """A platform's answer to a legal request; plaintext disclosures are dropped after fan-out."""

    __tablename__ = "responses"
    __table_args__ = (
        CheckConstraint(check_in("handling_code", HANDLING_CODES), name="handling_code"),
        CheckConstraint(check_in("fanout_state", FANOUT_STATES), name="fanout_state"),
        CheckConstraint(
            "handling_code <> 'H3' OR handling_conditions IS NOT NULL", name="h3_conditions"
        ),
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
    # H3: the conditions every recipient accepts on acknowledgement
    handling_conditions: Mapped[str | None] = mapped_column(Text)
    # the keyed hash of each disclosure's selector, in order, for minimisation in the router
    disclosure_selector_hashes: Mapped[list[str] | None] = mapped_column(ARRAY(String(64)))
    disclosures: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB(none_as_null=True))
    disclosure_count: Mapped[int] = mapped_column(Integer)
    # The platform's JWS over `disclosures`, kept (like them) only until fan-out seals it in.
    platform_signature: Mapped[str | None] = mapped_column(Text)
    emergency: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    fanout_state: Mapped[str] = mapped_column(String(16), server_default=FanoutState.RECEIVED.value)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = created_now()
    routed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("requests.id"), index=True)
