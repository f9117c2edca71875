"""Bodies of the response API.

Disclosed personal data appears only in `ResponseCreate` (what a platform submits); every
model that leaves the hub carries metadata or sealed ciphertext only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from services.registry.cases.schemas import MAX_SELECTORS, SelectorIn
from services.registry.deliveries.rules import FanoutState
from services.registry.responses.rules import HandlingCode
from shared.schemas import Strict
from shared.text import StorableText

MAX_CONDITIONS = 2000


class DisclosureRecord(Strict):
    """One disclosed datum, e.g. {"type": "ip_address", "value": "203.0.113.7"}."""

    type: Annotated[StorableText, Field(min_length=1, max_length=64)]
    value: Annotated[StorableText, Field(min_length=1, max_length=1024)]
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

    request_reference: Annotated[StorableText | None, Field(max_length=128)] = None
    request_id: uuid.UUID | None = None
    requesting_case_id: uuid.UUID | None = None
    scope: ResponseScopeIn
    handling_code: HandlingCode
    handling_conditions: (
        Annotated[StorableText, Field(min_length=1, max_length=MAX_CONDITIONS)] | None
    ) = None
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
        answers_request = self.request_id is not None  # the request names the requester
        if (
            self.handling_code is HandlingCode.H2
            and self.requesting_case_id is None
            and not answers_request
        ):
            raise ValueError("handling code H2 requires requesting_case_id or request_id")
        if self.handling_code is HandlingCode.H3 and self.handling_conditions is None:
            raise ValueError("handling code H3 requires handling_conditions")
        if self.handling_code is not HandlingCode.H3 and self.handling_conditions is not None:
            raise ValueError("handling_conditions belong to handling code H3 only")
        return self


class ResponseAccepted(Strict):
    id: uuid.UUID
    platform: str
    handling_code: HandlingCode
    fanout_state: FanoutState
    received_at: datetime
    request_id: uuid.UUID | None = None
