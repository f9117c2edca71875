"""Bodies of the inbox API: sealed deliveries and their acknowledgement."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from services.registry.deliveries.rules import DeliveryState
from services.registry.responses.rules import HandlingCode
from shared.schemas import Strict


class InboxItem(Strict):
    delivery_id: uuid.UUID
    response_id: uuid.UUID
    case_id: uuid.UUID
    case_reference: str
    platform: str
    handling_code: HandlingCode
    rule: str
    state: DeliveryState
    disclosure_count: int
    handling_conditions: str | None
    recipient_kid: str | None
    sealed_disclosures: str | None
    created_at: datetime
    published_at: datetime | None
    acknowledged_at: datetime | None


class Acknowledgement(Strict):
    delivery_id: uuid.UUID
    state: Literal["acknowledged"]
    acknowledged_at: datetime
    conditions_accepted_at: datetime | None


class AcknowledgementIn(Strict):
    """Optional body of an acknowledgement; H3 deliveries need `accept_conditions: true`."""

    accept_conditions: bool = False
