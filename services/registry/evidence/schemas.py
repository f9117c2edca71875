"""Bodies of the evidence, sender's-view and recall APIs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from services.registry.deliveries.rules import DeliveryState, FanoutState
from services.registry.evidence.rules import DeletionState
from services.registry.responses.rules import HandlingCode
from shared.schemas import Strict
from shared.text import StorableText


class EvidenceRecordOut(Strict):
    """One signed record; the fields beside `jws` repeat its signed claims for reading."""

    id: str
    kind: str
    subject_type: str
    subject_id: str
    at: str
    audit_digest: str
    jws: str


class EvidenceBundle(Strict):
    """Every record about `subject` the caller may see; verify with `caseshare evidence verify`
    against `/.well-known/evidence-jwks.json`."""

    subject: str
    records: list[EvidenceRecordOut]


class RecipientProgress(Strict):
    """One recipient the platform may see named (see `rules.nameable_jurisdictions`)."""

    delivery_id: uuid.UUID
    jurisdiction: str
    state: DeliveryState
    published_at: datetime | None
    acknowledged_at: datetime | None
    failed_at: datetime | None
    deletion: DeletionState | None


class RecallOut(Strict):
    response_id: uuid.UUID
    recalled_at: datetime
    withdrawn: int
    deletion_requested: int


class ResponseStatus(Strict):
    """The submitting platform's view of its response: where it is, and who has it."""

    id: uuid.UUID
    platform: str
    handling_code: HandlingCode
    fanout_state: FanoutState
    received_at: datetime
    routed_at: datetime | None
    recipients: list[RecipientProgress]
    other_recipients: dict[str, int] = Field(
        description="Recipients the platform may not see named, counted per delivery state"
    )
    recall: RecallOut | None


class RecallCreate(Strict):
    reason: Annotated[StorableText, Field(min_length=3, max_length=1000)]


class DeletionConfirmation(Strict):
    delivery_id: uuid.UUID
    state: Literal["confirmed"]
    confirmed_at: datetime
