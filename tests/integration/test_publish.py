"""Marking deliveries published: the deliveries, their events, audit entries and relay
evidence in one statement, and the session's objects of those deliveries kept in step."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.registry.cases import service as cases
from services.registry.context import Actor, Context
from services.registry.deliveries.models import Delivery
from services.registry.deliveries.rules import DeliveryState
from services.registry.evidence.models import EvidenceRecord
from services.registry.responses import service as responses
from services.router import fanout, publish
from shared.db import transaction
from tests import factories

pytestmark = pytest.mark.integration
POLICY = publish.Policy(timedelta(seconds=60), timedelta(seconds=600))


async def _decided(sm: async_sessionmaker[AsyncSession], ctx: Context) -> uuid.UUID:
    """A response about FR's case, decided: FR's delivery pending."""
    sel = factories.selector()
    async with transaction(sm) as s:
        fr = await cases.register(
            s,
            actor=Actor(client_id="authority-fr", jurisdiction="FR"),
            data=factories.case(selectors=[sel]),
            ctx=ctx,
        )
        accepted = await responses.submit(
            s,
            platform="telegram",
            client_id="platform-telegram",
            ctx=ctx,
            data=factories.response(selectors=[sel], requesting_case_id=fr.id),
        )
    async with transaction(sm) as s:
        await fanout.decide_and_record(s, response_id=accepted.id, prefix=ctx.topic_prefix)
    return fanout.delivery_id(accepted.id, "FR")


async def test_one_statement_marks_and_records_and_the_session_sees_it(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], ctx: Context
) -> None:
    ident = await _decided(sessionmaker, ctx)
    seen: list[str] = []

    def count(*args: object) -> None:
        seen.append(str(args[2]))

    async with transaction(sessionmaker) as s:
        records = await publish.load_outgoing(s, prefix=ctx.topic_prefix, delivery_ids=[ident])
        loaded = await s.get(Delivery, ident)  # in the session before it is marked
        assert loaded is not None
        assert loaded.state == DeliveryState.PENDING
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            await publish.mark_published(s, records=records, policy=POLICY, prefix=ctx.topic_prefix)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
        assert (loaded.state, loaded.attempts) == (DeliveryState.PUBLISHED, 1)
        await s.refresh(loaded)
        assert loaded.published_at is not None
    # the lock, then the hub's key, then one statement for everything written
    writes = [t for t in seen if "INSERT INTO" in t or t.startswith("UPDATE")]
    assert len(writes) == 1
    assert "UPDATE deliveries" in writes[0]
    async with transaction(sessionmaker) as s:
        relayed = await s.scalars(select(EvidenceRecord).where(EvidenceRecord.delivery_id == ident))
        assert len(relayed.all()) == 1
