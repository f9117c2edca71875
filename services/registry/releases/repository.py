"""The SQL of releases: the requesting case, the due holds."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.cases.models import Case
from services.registry.deliveries.models import Delivery
from services.registry.deliveries.rules import DeliveryState, FanoutState
from services.registry.releases.models import Release
from services.registry.releases.rules import ReleaseState
from services.registry.responses.models import CooperationResponse

BATCH = 200


async def requesting_case(session: AsyncSession, case_id: uuid.UUID) -> Case | None:
    return await session.get(Case, case_id)


def with_delivery() -> Select[tuple[Release, Delivery, CooperationResponse]]:
    return (
        select(Release, Delivery, CooperationResponse)
        .join(Delivery, Delivery.id == Release.delivery_id)
        .join(CooperationResponse, CooperationResponse.id == Release.response_id)
    )


async def held_due(
    session: AsyncSession, *, lapses_before: datetime, unreminded: bool
) -> Sequence[Release]:
    """Held releases lapsing before the time, locked (skipping ones a decision holds)."""
    query = select(Release).where(
        Release.state == ReleaseState.HELD, Release.lapses_at <= lapses_before
    )
    if unreminded:
        query = query.where(Release.reminded_at.is_(None))
    return (
        await session.scalars(
            query.order_by(Release.lapses_at).limit(BATCH).with_for_update(skip_locked=True)
        )
    ).all()


async def released_unpublished(session: AsyncSession) -> list[uuid.UUID]:
    """Deliveries released after the fan-out completed and not yet published."""
    rows = await session.scalars(
        select(Delivery.id)
        .join(CooperationResponse, CooperationResponse.id == Delivery.response_id)
        .where(
            Delivery.state == DeliveryState.PENDING,
            CooperationResponse.fanout_state == FanoutState.COMPLETED,
        )
        .order_by(Delivery.created_at)
        .limit(BATCH)
    )
    return list(rows.all())
