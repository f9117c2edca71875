"""SQL of the evidence domain: records by subject, deliveries of a response, open deletions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import String, any_, bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.cases.models import Case
from services.registry.deliveries.models import Delivery
from services.registry.evidence.models import DeletionRequest, EvidenceRecord


async def records_of_response(
    session: AsyncSession, response_id: uuid.UUID, *, jurisdictions: frozenset[str]
) -> Sequence[EvidenceRecord]:
    """The response's own records and those of its deliveries to `jurisdictions`, in order."""
    # lists as one array (= ANY), not IN (...): one statement text for any length, so pooled
    # connections do not prepare and keep a statement per length
    named = select(Delivery.id).where(
        Delivery.response_id == response_id,
        Delivery.jurisdiction
        == any_(bindparam("jurisdictions", sorted(jurisdictions), type_=ARRAY(String))),
    )
    query = (
        select(EvidenceRecord)
        .where(
            EvidenceRecord.response_id == response_id,
            or_(EvidenceRecord.delivery_id.is_(None), EvidenceRecord.delivery_id.in_(named)),
        )
        .order_by(EvidenceRecord.at, EvidenceRecord.id)
    )
    return (await session.scalars(query)).all()


async def records_of_delivery(
    session: AsyncSession, delivery_id: uuid.UUID
) -> Sequence[EvidenceRecord]:
    query = (
        select(EvidenceRecord)
        .where(EvidenceRecord.delivery_id == delivery_id)
        .order_by(EvidenceRecord.at, EvidenceRecord.id)
    )
    return (await session.scalars(query)).all()


async def records_of_subject(
    session: AsyncSession, subject_type: str, subject_id: str
) -> Sequence[EvidenceRecord]:
    """The records about one object of another domain (a release, a request), in order."""
    query = (
        select(EvidenceRecord)
        .where(EvidenceRecord.subject_type == subject_type, EvidenceRecord.subject_id == subject_id)
        .order_by(EvidenceRecord.at, EvidenceRecord.id)
    )
    return (await session.scalars(query)).all()


async def openers(session: AsyncSession, case_ids: set[uuid.UUID]) -> set[str]:
    """The jurisdictions that opened these cases."""
    if not case_ids:
        return set()
    return set(
        (
            await session.scalars(
                select(Case.opened_by).where(
                    Case.id == any_(bindparam("cases", list(case_ids), type_=ARRAY(UUID)))
                )
            )
        ).all()
    )


async def deliveries_of(
    session: AsyncSession, response_id: uuid.UUID, *, lock: bool = False
) -> Sequence[Delivery]:
    query = select(Delivery).where(Delivery.response_id == response_id).order_by(Delivery.id)
    if lock:
        query = query.with_for_update()
    return (await session.scalars(query)).all()


async def deletions_of(
    session: AsyncSession, delivery_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, DeletionRequest]:
    if not delivery_ids:
        return {}
    rows = await session.scalars(
        select(DeletionRequest).where(
            DeletionRequest.delivery_id
            == any_(bindparam("deliveries", list(delivery_ids), type_=ARRAY(UUID)))
        )
    )
    return {row.delivery_id: row for row in rows}


async def due_reminders(
    session: AsyncSession, *, before: datetime, limit: int
) -> Sequence[tuple[DeletionRequest, uuid.UUID]]:
    """Open deletion requests last asked (or reminded) before `before`, with the case id."""
    asked = func.coalesce(DeletionRequest.reminded_at, DeletionRequest.requested_at)
    query = (
        select(DeletionRequest, Delivery.case_id)
        .join(Delivery, Delivery.id == DeletionRequest.delivery_id)
        .where(DeletionRequest.state == "requested", asked < before)
        .order_by(asked)
        .limit(limit)
        .with_for_update(of=DeletionRequest, skip_locked=True)
    )
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


async def open_deletions(session: AsyncSession) -> int:
    """How many recalled deliveries still wait for their recipient's deletion confirmation."""
    count = await session.scalar(
        select(func.count())
        .select_from(DeletionRequest)
        .where(DeletionRequest.state == "requested")
    )
    return int(count or 0)


async def expired_payloads(
    session: AsyncSession, *, before: datetime, limit: int
) -> Sequence[Delivery]:
    """Acknowledged deliveries past retention that still hold a ciphertext, oldest first."""
    query = (
        select(Delivery)
        .where(Delivery.acknowledged_at < before, Delivery.sealed_disclosures.is_not(None))
        .order_by(Delivery.acknowledged_at, Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(query)).all()


async def open_deletion_requests(session: AsyncSession, *, limit: int) -> Sequence[DeletionRequest]:
    """The oldest deletion requests still waiting for their recipient, for the dashboard."""
    query = (
        select(DeletionRequest)
        .where(DeletionRequest.state == "requested")
        .order_by(DeletionRequest.requested_at, DeletionRequest.delivery_id)
        .limit(limit)
    )
    return (await session.scalars(query)).all()
