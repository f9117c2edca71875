"""Event contracts: one pydantic model per message type, named in the past tense, with its
topic family and schema version beside it. Every producer and consumer imports them from here.

Events carry identifiers and metadata, never disclosed personal data: disclosures travel only as
a JWE sealed for one recipient (`ResponseDelivered.sealed_disclosures`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

Topic = Literal["cases", "responses", "deliveries", "dlq", "inbox"]


class Event(BaseModel):
    """Base for every message; `TYPE` becomes the CloudEvents `ce_type`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]
    TOPIC: ClassVar[Topic]
    SCHEMA_VERSION: ClassVar[int] = 1


class CaseRegistered(Event):
    """A jurisdiction registered a case; metadata only (no selectors)."""

    TYPE = "eu.caseshare.case.registered.v1"
    TOPIC = "cases"

    case_id: uuid.UUID
    reference: str
    opened_by: str
    platform: str
    coordinating_jurisdiction: str | None
    lead_case_id: uuid.UUID | None
    emergency: bool
    registered_at: datetime


class CaseStatusChanged(Event):
    """A case moved between open, suspended and closed."""

    TYPE = "eu.caseshare.case.status-changed.v1"
    TOPIC = "cases"

    case_id: uuid.UUID
    opened_by: str
    status: str
    version: int
    changed_at: datetime


class ResponseReceived(Event):
    """A platform's cooperation response was accepted; the router fans it out."""

    TYPE = "eu.caseshare.response.received.v1"
    TOPIC = "responses"

    response_id: uuid.UUID
    platform: str
    handling_code: str
    emergency: bool
    received_at: datetime


class ResponseDelivered(Event):
    """What a recipient finds on its inbox topic: one delivery, disclosures sealed for it."""

    TYPE = "eu.caseshare.response.delivered.v1"
    TOPIC = "inbox"

    delivery_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    case_id: uuid.UUID
    case_reference: str
    platform: str
    handling_code: str
    rule: str
    emergency: bool
    issued_at: datetime
    disclosure_count: int
    recipient_kid: str | None
    sealed_disclosures: str | None


class CaseLinkFound(Event):
    """Told to each opener when its case shares a selector with another jurisdiction's case."""

    TYPE = "eu.caseshare.case.link-found.v1"
    TOPIC = "inbox"

    link_id: uuid.UUID
    jurisdiction: str
    case_id: uuid.UUID
    case_reference: str
    other_jurisdiction: str
    other_case_reference: str
    platform: str
    found_at: datetime


class DeliveryPublished(Event):
    """The fan-out log: a delivery reached its recipient's inbox topic."""

    TYPE = "eu.caseshare.delivery.published.v1"
    TOPIC = "deliveries"

    delivery_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    rule: str
    attempt: int
    published_at: datetime


class DeliveryAcknowledged(Event):
    """The recipient confirmed retrieval; this closes the delivery."""

    TYPE = "eu.caseshare.delivery.acknowledged.v1"
    TOPIC = "deliveries"

    delivery_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    acknowledged_at: datetime


class JurisdictionExcluded(Event):
    """A jurisdiction was considered for a response and refused, with the reason."""

    TYPE = "eu.caseshare.delivery.excluded.v1"
    TOPIC = "deliveries"

    exclusion_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    reason: str
    detail: str
    decided_at: datetime


class DeliveryFailed(Event):
    """Alert: a delivery stayed unacknowledged through every re-publication attempt."""

    TYPE = "eu.caseshare.delivery.failed.v1"
    TOPIC = "deliveries"

    delivery_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    attempts: int
    failed_at: datetime


class ResponseRecalled(Event):
    """The platform or the originator recalled a response; its deliveries follow."""

    TYPE = "eu.caseshare.response.recalled.v1"
    TOPIC = "deliveries"

    response_id: uuid.UUID
    recalled_by: str  # "platform" or "originator"
    withdrawn: int
    deletion_requested: int
    recalled_at: datetime


class DeliveryRecalled(Event):
    """On the recipient's inbox: a delivery was recalled. Unacknowledged, it is withdrawn (the
    hub dropped its ciphertext); acknowledged, `deletion_required` asks the recipient to delete
    it and confirm with `POST /v1/inbox/{delivery_id}/deletion-confirmation`."""

    TYPE = "eu.caseshare.delivery.recalled.v1"
    TOPIC = "inbox"

    delivery_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    case_id: uuid.UUID
    deletion_required: bool
    recalled_at: datetime


class DeletionReminded(Event):
    """On the recipient's inbox: a recalled delivery's deletion is still unconfirmed."""

    TYPE = "eu.caseshare.delivery.deletion-reminded.v1"
    TOPIC = "inbox"

    delivery_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    case_id: uuid.UUID
    requested_at: datetime
    reminder: int
    reminded_at: datetime


class DeletionConfirmed(Event):
    """The recipient confirmed it deleted a recalled delivery."""

    TYPE = "eu.caseshare.delivery.deletion-confirmed.v1"
    TOPIC = "deliveries"

    delivery_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    confirmed_at: datetime


class PayloadDeleted(Event):
    """Retention: the hub deleted an acknowledged delivery's ciphertext; metadata stays."""

    TYPE = "eu.caseshare.delivery.payload-deleted.v1"
    TOPIC = "deliveries"

    delivery_id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    deleted_at: datetime


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        CaseRegistered,
        CaseStatusChanged,
        ResponseReceived,
        ResponseDelivered,
        CaseLinkFound,
        DeliveryPublished,
        DeliveryAcknowledged,
        JurisdictionExcluded,
        DeliveryFailed,
        ResponseRecalled,
        DeliveryRecalled,
        DeletionReminded,
        DeletionConfirmed,
        PayloadDeleted,
    )
}


def json_datetime(value: datetime) -> str:
    """A timestamp exactly as these models write it in JSON mode (ISO 8601, UTC as `Z`), for
    code that builds a payload without the model."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def topic_name(prefix: str, family: Topic, jurisdiction: str | None = None) -> str:
    """`caseshare.responses.v1`, or `caseshare.inbox.FR.v1` for a jurisdiction's inbox."""
    if family == "inbox":
        if jurisdiction is None or len(jurisdiction) != 2 or not jurisdiction.isalpha():
            raise ValueError("an inbox topic needs an ISO 3166-1 alpha-2 code")
        return f"{prefix}.inbox.{jurisdiction.upper()}.v1"
    return f"{prefix}.{family}.v1"
