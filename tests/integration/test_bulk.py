"""Rows for several tables written with one statement: foreign keys between them hold in any
order (PostgreSQL checks them once the statement has run) and are still checked; and one
statement text serves every batch size."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.cases import service as cases
from services.registry.context import Actor, Context
from services.registry.deliveries.models import Delivery
from services.registry.deliveries.rules import DeliveryState
from services.registry.releases import service as releases
from services.registry.releases.models import Release
from services.registry.releases.rules import ReleaseBasis, ReleaseState
from services.registry.responses import service as responses
from services.registry.standing.rules import Reason
from services.registry.store import bulk
from services.router import fanout
from tests import factories

pytestmark = pytest.mark.integration


async def _delivery_and_release(
    session: AsyncSession, ctx: Context, *, delivery_id: uuid.UUID | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A delivery row for a fresh response and a release row naming it (or `delivery_id`)."""
    sel = factories.selector()
    case = await cases.register(
        session,
        actor=Actor(client_id="authority-fr", jurisdiction="FR"),
        data=factories.case(selectors=[sel]),
        ctx=ctx,
    )
    accepted = await responses.submit(
        session,
        platform="telegram",
        client_id="platform-telegram",
        ctx=ctx,
        data=factories.response(selectors=[sel], requesting_case_id=case.id),
    )
    now = datetime.now(UTC)
    ident = fanout.delivery_id(accepted.id, "DE")
    delivery = fanout.NewDelivery(
        ident,
        accepted.id,
        "DE",
        case.id,
        Reason.SHARED_SELECTOR.value,
        "",
        None,
        None,
        None,
        DeliveryState.HELD.value,
        0,
        now,
    )._asdict()
    release = {
        "id": uuid.uuid4(),
        "delivery_id": delivery_id or ident,
        "response_id": accepted.id,
        "jurisdiction": "DE",
        "requesting_case_id": case.id,
        "originator": "FR",
        "state": ReleaseState.HELD.value,
        "basis": ReleaseBasis.AWAITING_ORIGINATOR.value,
        "lapses_at": now,
        "created_at": now,
    }
    return delivery, release


async def test_a_child_row_may_come_before_its_parent_in_one_statement(
    session: AsyncSession, ctx: Context
) -> None:
    delivery, release = await _delivery_and_release(session, ctx)
    await bulk.write(
        session,
        bulk.Rows(releases._RELEASES, [release]),  # the child's CTE first
        bulk.Rows(fanout._DELIVERIES, [delivery]),
    )
    found = await session.scalar(
        select(func.count()).select_from(Release).where(Release.delivery_id == delivery["id"])
    )
    assert found == 1
    assert await session.get(Delivery, delivery["id"]) is not None


async def test_a_foreign_key_between_parts_is_still_checked(
    session: AsyncSession, ctx: Context
) -> None:
    delivery, release = await _delivery_and_release(session, ctx, delivery_id=uuid.uuid4())
    with pytest.raises(IntegrityError):
        await bulk.write(
            session,
            bulk.Rows(releases._RELEASES, [release]),
            bulk.Rows(fanout._DELIVERIES, [delivery]),
        )


def test_one_statement_per_combination_of_tables_whatever_the_rows() -> None:
    both = (releases._RELEASES, fanout._DELIVERIES)
    assert bulk.statement(both) is bulk.statement(both)
    assert bulk.statement((fanout._DELIVERIES,)) is fanout._DELIVERIES.statement
