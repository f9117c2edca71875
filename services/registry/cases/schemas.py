"""Bodies of the case API (strict: unknown fields are refused)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field

from services.registry.cases.rules import CaseStatus, CoordinationState, ReleasePolicy
from services.registry.cases.selectors import SelectorKind
from shared.schemas import Code, ShortText, Slug, Strict
from shared.text import CaseReference, StorableText

MAX_SELECTORS = 100


class SelectorIn(Strict):
    kind: SelectorKind
    value: Annotated[StorableText, Field(min_length=1, max_length=256)]


class SelectorOut(Strict):
    kind: SelectorKind
    masked: str


class CaseCreate(Strict):
    """What an authority sends to register a case; the opener comes from its token."""

    reference: CaseReference
    platform: Slug
    legal_basis: ShortText
    offence_categories: Annotated[list[ShortText], Field(min_length=1, max_length=20)]
    selectors: Annotated[list[SelectorIn], Field(min_length=1, max_length=MAX_SELECTORS)]
    coordinating_jurisdiction: Code | None = None
    lead_case_id: uuid.UUID | None = None
    emergency: bool = False
    release_policy: ReleasePolicy = ReleasePolicy.NONE


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
    release_policy: ReleasePolicy
    coordination_state: CoordinationState | None
    version: int
    created_at: datetime
    updated_at: datetime


class CaseStatusUpdate(Strict):
    status: CaseStatus
    version: int | None = Field(default=None, ge=1)


class ReleasePolicyUpdate(Strict):
    """The opener's standing release policy for responses to this case."""

    release_policy: ReleasePolicy
