"""Bodies of the response API.

Disclosed personal data appears only in `ResponseCreate` (what a platform submits); every
model that leaves the hub carries metadata or sealed ciphertext only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from services.registry.cases.schemas import MAX_SELECTORS, SelectorIn
from services.registry.responses.rules import HandlingCode
from shared.schemas import Strict


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
    case_ids: Annotated[list[uuid.UUID], Field(max_length=50, default_factory=list)]
    selectors: Annotated[list[SelectorIn], Field(max_length=MAX_SELECTORS, default_factory=list)]
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
    disclosures_signature: Annotated[
        str | None,
        Field(
            max_length=16 * 1024 * 1024,
            pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$",
            description='The platform\'s JWS over {"disclosures": [...]}; required once the'
            " platform registered a signing key",
        ),
    ] = None

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
