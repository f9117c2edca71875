"""The reconciler's re-publication policy against the real database and broker: the same
delivery id on the wire, exponential backoff with a cap, and `failed` with an alert event."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from caseshare.stack.embedded import EmbeddedTansu
from services.registry.cases import service as cases
from services.registry.context import Actor, Context
from services.registry.deliveries.models import Delivery
from services.registry.responses import service as responses
from services.registry.responses.models import CooperationResponse
from services.registry.store.models import OutboxEvent
from services.router import fanout, publish
from services.router.metrics import RouterMetrics
from services.router.reconciler import Reconciler
from shared.db import transaction
from shared.events import DeliveryFailed, topic_name
from shared.kafka import decode
from tests import factories, kafka_utils
from tests.kafka_utils import read_topic

pytestmark = pytest.mark.integration


def test_backoff_doubles_from_the_ack_timeout_and_is_capped() -> None:
    policy = publish.Policy(timedelta(seconds=30), timedelta(seconds=100))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    waits = [(policy.next_attempt(n, now) - now).total_seconds() for n in range(1, 6)]
    assert waits == [30, 60, 100, 100, 100]


@pytest.fixture
async def kafka(broker: EmbeddedTansu) -> AsyncIterator[kafka_utils.Kafka]:
    """One partition a topic, as these tests have always run."""
    async with kafka_utils.producing(broker.bootstrap, partitions=1) as started:
        yield started


async def test_unacknowledged_delivery_is_republished_then_failed(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    kafka: tuple,
    broker: EmbeddedTansu,
) -> None:
    producer, provisioner = kafka
    policy = publish.Policy(timedelta(seconds=3600), timedelta(seconds=7200))
    async with transaction(sessionmaker) as s:
        sel = factories.selector()
        mine = await cases.register(
            s, actor=Actor("authority-fr", "FR"), data=factories.case(selectors=[sel]), ctx=ctx
        )
        accepted = await responses.submit(
            s,
            platform="telegram",
            client_id="platform-telegram",
            ctx=ctx,
            data=factories.response(case_ids=[mine.id], disclosures=[factories.disclosure(sel)]),
        )
    await fanout.process_response(
        sessionmaker,
        producer,
        provisioner,
        response_id=accepted.id,
        prefix=ctx.topic_prefix,
        policy=policy,
    )
    reconciler = Reconciler(
        sessionmaker,
        producer,
        provisioner,
        database_url="unused",
        prefix=ctx.topic_prefix,
        policy=policy,
        max_attempts=2,
        redrive_after=timedelta(hours=1),
        replay_window=timedelta(0),
        interval=1,
        redrive=_never,
        metrics=RouterMetrics(),
    )
    delivery = fanout.delivery_id(accepted.id, "FR")

    await reconciler.republish_due()  # not due yet: the ack timeout is an hour
    assert await _attempts(sessionmaker, delivery) == (1, "published")

    await _make_due(sessionmaker, delivery)
    await reconciler.republish_due()
    attempts, state = await _attempts(sessionmaker, delivery)
    assert (attempts, state) == (2, "published")
    async with transaction(sessionmaker) as s:
        row = await s.get(Delivery, delivery)
        assert row is not None
        assert row.next_attempt_at is not None
        wait = row.next_attempt_at - datetime.now(UTC)
        assert timedelta(seconds=7100) < wait <= timedelta(seconds=7200)  # 2 x 3600, capped

    records = await read_topic(broker.bootstrap, topic_name(ctx.topic_prefix, "inbox", "FR"))
    ids = [decode(r.value, r.headers).ce_id for r in records]
    assert ids.count(str(delivery)) == 2  # published twice, under the same delivery id

    await _make_due(sessionmaker, delivery)
    await reconciler.republish_due()  # attempts exhausted
    assert await _attempts(sessionmaker, delivery) == (2, "failed")
    async with transaction(sessionmaker) as s:
        alerts = (
            await s.scalars(
                select(OutboxEvent).where(
                    OutboxEvent.event_type == DeliveryFailed.TYPE,
                    OutboxEvent.subject == str(delivery),
                )
            )
        ).all()
    assert len(alerts) == 1
    assert alerts[0].payload["attempts"] == 2


async def _never(_response_id: object) -> int:
    raise AssertionError("nothing should be re-driven here")


async def _attempts(sm: async_sessionmaker[AsyncSession], delivery: object) -> tuple[int, str]:
    async with transaction(sm) as s:
        row = await s.get(Delivery, delivery)
        assert row is not None
        return row.attempts, row.state


async def _make_due(sm: async_sessionmaker[AsyncSession], delivery: object) -> None:
    async with transaction(sm) as s:
        await s.execute(
            update(Delivery)
            .where(Delivery.id == delivery)
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )


async def test_redrive_leaves_queued_responses_to_a_busy_consumer(
    sessionmaker: async_sessionmaker[AsyncSession], ctx: Context, kafka: tuple
) -> None:
    """Received long ago but queued behind a consumer that is making progress: not stalled.
    Routed long ago and never completed: stalled, whatever the consumer does. Routed just now
    (the consumer is on it): not stalled, however long it was queued."""
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    async with transaction(sessionmaker) as s:
        sel = factories.selector()
        mine = await cases.register(
            s, actor=Actor("authority-fr", "FR"), data=factories.case(selectors=[sel]), ctx=ctx
        )
        queued, crashed, in_progress = [
            (
                await responses.submit(
                    s,
                    platform="telegram",
                    client_id="platform-telegram",
                    ctx=ctx,
                    data=factories.response(
                        case_ids=[mine.id], disclosures=[factories.disclosure(sel)]
                    ),
                )
            ).id
            for _ in range(3)
        ]
        await s.execute(
            update(CooperationResponse)
            .where(CooperationResponse.id.in_([queued, crashed, in_progress]))
            .values(received_at=long_ago)
        )
        await s.execute(
            update(CooperationResponse)
            .where(CooperationResponse.id == crashed)
            .values(fanout_state="routed", routed_at=long_ago)
        )
        await s.execute(
            update(CooperationResponse)
            .where(CooperationResponse.id == in_progress)
            .values(fanout_state="routed", routed_at=datetime.now(UTC))
        )
    redriven: list[uuid.UUID] = []

    async def redrive(response_id: uuid.UUID) -> int:
        redriven.append(response_id)
        return 0

    busy = True
    reconciler = Reconciler(
        sessionmaker,
        *kafka,
        database_url="unused",
        prefix=ctx.topic_prefix,
        policy=publish.Policy(timedelta(seconds=3600), timedelta(seconds=7200)),
        max_attempts=2,
        redrive_after=timedelta(seconds=10),
        replay_window=timedelta(0),
        interval=1,
        redrive=redrive,
        metrics=RouterMetrics(),
        queue_busy=lambda _within: busy,
    )
    ours = {queued, crashed, in_progress}
    try:
        await reconciler.redrive_stalled()
        assert [r for r in redriven if r in ours] == [crashed]
        redriven.clear()
        busy = False
        await reconciler.redrive_stalled()
        assert {r for r in redriven if r in ours} == {queued, crashed}
    finally:  # a later full pass elsewhere must not find these
        async with transaction(sessionmaker) as s:
            await s.execute(
                update(CooperationResponse)
                .where(CooperationResponse.id.in_(ours))
                .values(fanout_state="completed")
            )
