"""The jurisdictions a routing decision refused: one row each, and one summary event per
response for the fan-out log (ADR 0007).

Most of the ~40 jurisdictions are excluded from every response, so these rows and payloads
are built as plainly as possible, for a whole batch of responses with one INSERT each.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Text
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.deliveries.models import Exclusion
from services.registry.standing import rules
from services.registry.store import bulk, outbox
from shared.events import JurisdictionsExcluded, json_datetime


@dataclass(frozen=True)
class Refused:
    """One response's refusals: each with its exclusion id, and the summary event's id."""

    response_id: uuid.UUID
    decided_at: datetime
    each: list[tuple[uuid.UUID, rules.Decision]]
    event_id: uuid.UUID


_EXCLUSIONS = bulk.RowInserter(
    Exclusion,
    columns={
        "id": PG_UUID(as_uuid=True),
        "response_id": PG_UUID(as_uuid=True),
        "jurisdiction": Text(),
        "case_id": PG_UUID(as_uuid=True),
        "reason": Text(),
        "detail": Text(),
        "created_at": DateTime(timezone=True),
    },
)


async def record(session: AsyncSession, refused: Sequence[Refused], *, prefix: str) -> None:
    """The exclusion rows of every response, and one summary event per response that refused
    anyone, with one statement."""
    await bulk.write(session, *staged(refused, prefix=prefix))


def staged(refused: Sequence[Refused], *, prefix: str) -> list[bulk.Rows]:
    """`record`'s rows, for a caller that writes them with other tables' (`bulk.write`)."""
    rows, summaries = [], []
    for r in refused:
        if not r.each:
            continue
        rows += [
            {
                "id": ident,
                "response_id": r.response_id,
                "jurisdiction": d.jurisdiction,
                "case_id": d.matched_case_id,
                "reason": d.reason.value,
                "detail": d.detail,
                "created_at": r.decided_at,
            }
            for ident, d in r.each
        ]
        key = str(r.response_id)
        payload = summary_payload(key, r.each, json_datetime(r.decided_at))
        summaries.append(outbox.Prepared(JurisdictionsExcluded, payload, key, key, r.event_id))
    return [bulk.Rows(_EXCLUSIONS, rows), outbox.staged(summaries, prefix=prefix)]


def summary_payload(
    response_id: str, each: list[tuple[uuid.UUID, rules.Decision]], decided_at: str
) -> dict[str, Any]:
    """`JurisdictionsExcluded(...).model_dump(mode="json")`, without the model (tested equal)."""
    return {
        "response_id": response_id,
        "decided_at": decided_at,
        "exclusions": [
            {
                "exclusion_id": str(ident),
                "jurisdiction": d.jurisdiction,
                "reason": d.reason.value,
                "detail": d.detail,
            }
            for ident, d in each
        ],
    }
