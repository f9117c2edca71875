"""Request and response bodies of the public APIs (strict: unknown fields are refused).

Disclosed personal data appears only in `ResponseCreate` (what a platform submits); every
model that leaves the hub carries metadata or sealed ciphertext only.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.registry.rules import CaseStatus, HandlingCode
from services.registry.selectors import SelectorKind

Code = Annotated[str, Field(pattern=r"^[A-Z]{2}$", examples=["FR"])]
Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", examples=["telegram"])]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
MAX_SELECTORS = 100
MAX_PAGE = 100
T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SelectorIn(Strict):
    kind: SelectorKind
    value: Annotated[str, Field(min_length=1, max_length=256)]


class SelectorOut(Strict):
    kind: SelectorKind
    masked: str


class CaseCreate(Strict):
    """What an authority sends to register a case; the opener comes from its token."""

    reference: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[\w./:-]+$")]
    platform: Slug
    legal_basis: ShortText
    offence_categories: Annotated[list[ShortText], Field(min_length=1, max_length=20)]
    selectors: Annotated[list[SelectorIn], Field(min_length=1, max_length=MAX_SELECTORS)]
    coordinating_jurisdiction: Code | None = None
    lead_case_id: uuid.UUID | None = None
    emergency: bool = False


class CaseOut(Strict):
    id: uuid.UUID
    reference: str
    opened_by: str
    platform: str
    coordinating_jurisdiction: str | None
    lead_case_id: uuid.UUID | None
    offence_categories: list[str]
    legal_basis: str
    selectors: list[SelectorOut]
    status: CaseStatus
    emergency: bool
    version: int
    created_at: datetime
    updated_at: datetime


class CaseStatusUpdate(Strict):
    status: CaseStatus
    version: int | None = Field(default=None, ge=1)


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class DisclosureRecord(Strict):
    """One disclosed datum, e.g. {"type": "ip_address", "value": "203.0.113.7"}."""

    type: Annotated[str, Field(min_length=1, max_length=64)]
    value: Annotated[str, Field(min_length=1, max_length=1024)]
    observed_at: datetime | None = None


class Disclosure(Strict):
    selector: SelectorIn
    category: Literal["subscriber", "traffic", "content"]
    records: Annotated[list[DisclosureRecord], Field(min_length=1, max_length=1000)]


class ResponseScopeIn(Strict):
    case_ids: Annotated[list[uuid.UUID], Field(max_length=50)] = []
    selectors: Annotated[list[SelectorIn], Field(max_length=MAX_SELECTORS)] = []
    lead_case_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> ResponseScopeIn:
        if not (self.case_ids or self.selectors or self.lead_case_id):
            raise ValueError("scope must name at least one case, selector or lead case")
        return self


class ResponseCreate(Strict):
    """A platform's cooperation response; the platform comes from its token."""

    request_reference: Annotated[str | None, Field(max_length=128)] = None
    requesting_case_id: uuid.UUID | None = None
    scope: ResponseScopeIn
    handling_code: HandlingCode
    disclosures: Annotated[list[Disclosure], Field(min_length=1, max_length=100)]
    issued_at: datetime
    emergency: bool = False

    @model_validator(mode="after")
    def _h2_needs_requester(self) -> ResponseCreate:
        if self.handling_code is HandlingCode.H2 and self.requesting_case_id is None:
            raise ValueError("handling code H2 requires requesting_case_id")
        return self


class ResponseAccepted(Strict):
    id: uuid.UUID
    platform: str
    handling_code: HandlingCode
    fanout_state: str
    received_at: datetime


class InboxItem(Strict):
    delivery_id: uuid.UUID
    response_id: uuid.UUID
    case_id: uuid.UUID
    case_reference: str
    platform: str
    handling_code: HandlingCode
    rule: str
    state: str
    disclosure_count: int
    recipient_kid: str | None
    sealed_disclosures: str | None
    created_at: datetime
    published_at: datetime | None
    acknowledged_at: datetime | None


class Acknowledgement(Strict):
    delivery_id: uuid.UUID
    state: Literal["acknowledged"]
    acknowledged_at: datetime
