"""Bodies of the release API: the originator's pending decisions and its decision."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field

from services.registry.releases.rules import ReleaseBasis, ReleaseDecision, ReleaseState
from services.registry.responses.rules import HandlingCode
from shared.schemas import Strict
from shared.text import StorableText

MAX_REASON = 2000


class ReleaseOut(Strict):
    """One delivery's release as its originator sees it: metadata, never disclosed data."""

    id: uuid.UUID
    response_id: uuid.UUID
    delivery_id: uuid.UUID
    jurisdiction: str
    requesting_case_id: uuid.UUID | None
    handling_code: HandlingCode
    handling_conditions: str | None
    disclosure_count: int | None
    state: ReleaseState
    basis: ReleaseBasis
    reason: str | None
    lapses_at: datetime | None
    decided_at: datetime | None
    created_at: datetime


class ReleaseDecisionIn(Strict):
    decision: ReleaseDecision
    reason: Annotated[StorableText, Field(min_length=1, max_length=MAX_REASON)] | None = None
