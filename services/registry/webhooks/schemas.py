"""Bodies of the webhook API: registering an endpoint, and what its owner and admins see.

The signing secret appears in one body only, the answer to the registration."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field

from services.registry.webhooks.rules import MAX_URL_LENGTH, EndpointState
from shared.schemas import Strict
from shared.text import StorableText


class EndpointCreate(Strict):
    """An HTTPS URL that will receive the caller's inbox events once an admin approves it."""

    url: Annotated[StorableText, Field(min_length=8, max_length=MAX_URL_LENGTH)]
    description: Annotated[StorableText, Field(max_length=200)] | None = None


class EndpointOut(BaseModel):
    """An endpoint as its owner and admins see it; never its secret."""

    id: uuid.UUID
    jurisdiction: str
    url: str
    description: str | None
    state: EndpointState
    created_at: datetime
    approved_at: datetime | None
    disabled_at: datetime | None
    consecutive_failures: int
    last_success_at: datetime | None


class EndpointCreated(EndpointOut):
    """The registration's answer: the signing secret, shown this once (Standard Webhooks)."""

    secret: str


class AttemptOut(BaseModel):
    """One line of an endpoint's delivery log: which message, which try, and what came back."""

    message_id: uuid.UUID
    event_type: str
    attempt: int
    status_code: int | None
    error_class: str | None
    duration_ms: int
    attempted_at: datetime
