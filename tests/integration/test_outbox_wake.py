"""A registration wakes the outbox relay after its commit, without a NOTIFY inside it.

The relay listens on its channel (`services.router.relay.CHANNEL`); these tests listen there
too, on a database of their own, so every notification they see is one they caused.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.registry.cases import registration, repository, wake
from services.registry.cases import service as cases
from services.registry.context import Actor, Context
from services.registry.store.models import OutboxEvent
from services.router import relay
from shared.db import create_sessionmaker, single_statements, transaction
from tests import factories
from tests.conftest import HMAC_KEY
from tests.intake_api import running, settings_for

pytestmark = pytest.mark.integration

ACTOR = Actor(client_id="authority-fr", jurisdiction="FR")


class Heard(list[str]):
    """The notifications on the relay's channel while the test runs."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()

    def hear(self, *args: object) -> None:
        self.append(str(args[2]))
        self.arrived.set()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def heard(database: str) -> AsyncIterator[Heard]:
    conn = await asyncpg.connect(relay.asyncpg_dsn(database))
    seen = Heard()
    await conn.add_listener(relay.CHANNEL, seen.hear)
    try:
        yield seen
    finally:
        await conn.close()


def test_the_bell_rings_on_the_relays_channel() -> None:
    assert wake.CHANNEL == relay.CHANNEL


async def test_a_registration_wakes_the_relay(
    database: str, db: AsyncEngine, heard: Heard, topic_prefix: str
) -> None:
    async with running(settings_for(database, topic_prefix)) as intake:
        body = factories.case().model_dump(mode="json")
        answer = await intake.client.post("/v1/cases", json=body, headers=intake.authority("FR"))
        assert answer.status_code == 201, answer.text
        await heard.until(1)
    async with db.connect() as conn:
        case_id = answer.json()["id"]
        queued = select(func.count()).where(OutboxEvent.subject == case_id)
        assert await conn.scalar(queued) == 1


async def test_the_one_statement_commits_its_event_without_a_notify(
    db: AsyncEngine, heard: Heard, topic_prefix: str
) -> None:
    """Nothing notifies from inside the registration's own statement; a transaction that
    queues events (here a registration under a key's transaction) still does, by trigger."""
    sm = create_sessionmaker(db)
    ctx = Context(hmac_key=HMAC_KEY.encode(), topic_prefix=topic_prefix)
    _, plan = registration.plan(ACTOR, factories.case(), ctx)
    async with single_statements(sm) as conn:
        result = await repository.register_alone(conn, plan)
    assert result.outcome is repository.Outcome.REGISTERED
    async with transaction(sm) as session:
        await cases.register(session, actor=ACTOR, data=factories.case(), ctx=ctx)
    await heard.until(1)
    await asyncio.sleep(0.3)  # any notification of the first would have arrived before
    assert len(heard) == 1


async def test_rings_fold_into_the_notify_in_flight_and_one_more(
    db: AsyncEngine, heard: Heard
) -> None:
    """Rings before a NOTIFY is sent are answered by it; rings while it is on its way, by one
    more after it: each ring is followed by a NOTIFY sent after it, and no more are sent."""
    bell = wake.Bell(create_sessionmaker(db))
    for _ in range(10):
        bell.ring()
    await heard.until(1)
    await asyncio.sleep(0.3)
    assert len(heard) == 1
    bell.ring()
    await asyncio.sleep(0)  # the NOTIFY is on its way
    for _ in range(10):
        bell.ring()
    await heard.until(3)
    await asyncio.sleep(0.3)
    assert len(heard) == 3
