"""Bodies of the request API (strict: unknown fields are refused; free texts storable)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, model_validator

from services.registry.cases.schemas import MAX_SELECTORS, SelectorIn
from services.registry.requests.rules import (
    ClarificationGround,
    DataCategory,
    ObjectionDecision,
    RefusalGround,
    RequestState,
    RequestType,
    ReviewState,
)
from shared.schemas import Slug, Strict
from shared.text import StorableText

Text = Annotated[StorableText, Field(min_length=1, max_length=2000)]
Name = Annotated[StorableText, Field(min_length=1, max_length=200)]


class RequestCreate(Strict):
    """An order on one of the caller's open cases; the issuer comes from its token."""

    case_id: uuid.UUID
    type: RequestType
    platform: Slug
    categories: Annotated[list[DataCategory], Field(min_length=1, max_length=4)]
    selectors: Annotated[list[SelectorIn], Field(min_length=1, max_length=MAX_SELECTORS)]
    time_from: datetime | None = None
    time_to: datetime | None = None
    legal_basis: Name
    issuing_authority: Name
    validated_by: Name | None = None
    follows_request_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _coherent(self) -> RequestCreate:
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("categories must not repeat")
        if self.time_from and self.time_to and self.time_from > self.time_to:
            raise ValueError("time_from must not be after time_to")
        return self


class ClarificationRequest(Strict):
    ground: ClarificationGround
    detail: Text


class Clarification(Strict):
    detail: Text


class Refusal(Strict):
    ground: RefusalGround
    detail: Text


class PreservationConfirmation(Strict):
    preserved_until: datetime


class Objection(Strict):
    """The enforcing state's decision: grounds for refusal, or none."""

    decision: ObjectionDecision
    grounds: Text | None = None

    @model_validator(mode="after")
    def _grounds_when_objecting(self) -> Objection:
        if self.decision is ObjectionDecision.OBJECT and not self.grounds:
            raise ValueError("an objection states its grounds")
        return self


class Withdrawal(Strict):
    reason: Text | None = None


class HistoryOut(Strict):
    at: datetime
    actor: str
    action: str
    from_state: RequestState | None
    to_state: RequestState
    details: dict[str, str | int | None]


class RequestOut(Strict):
    id: uuid.UUID
    case_id: uuid.UUID
    type: RequestType
    state: RequestState
    review_state: ReviewState
    platform: str
    issued_by: str
    enforcing_jurisdiction: str
    categories: list[DataCategory]
    selectors: list[SelectorIn]
    time_from: datetime | None
    time_to: datetime | None
    legal_basis: str
    issuing_authority: str
    validated_by: str | None
    follows_request_id: uuid.UUID | None
    extended: bool
    paused: bool
    received_at: datetime
    deadline_at: datetime
    objection_deadline_at: datetime | None
    preserved_until: datetime | None
    created_at: datetime
    updated_at: datetime
    history: list[HistoryOut] | None = None


class DeskRequest(Strict):
    """A request as the coordination desk sees it: metadata only, no selectors or free text."""

    id: uuid.UUID
    case_id: uuid.UUID
    type: RequestType
    state: RequestState
    review_state: ReviewState
    platform: str
    issued_by: str
    enforcing_jurisdiction: str
    categories: list[DataCategory]
    paused: bool
    deadline_at: datetime
    objection_deadline_at: datetime | None
    created_at: datetime


class DeskStep(Strict):
    at: datetime
    actor: str
    action: str
    from_state: RequestState | None
    to_state: RequestState
