"""Several responses fanned out as one batch: a poison record among them sinks only itself, a
crash between producing and marking replays under the same delivery ids, and no group is
larger than the bound. The consumer runs on records read back from the real broker, its batch
handler on the real fan-out."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from caseshare.stack.embedded import EmbeddedTansu
from services.registry.cases import service as cases
from services.registry.context import Actor, Context
from services.registry.deliveries.models import Delivery
from services.registry.responses import service as responses
from services.registry.responses.models import CooperationResponse
from services.router import fanout, publish
from services.router.consumer import ResponseConsumer
from services.router.metrics import RouterMetrics
from shared.db import transaction
from shared.events import ResponseReceived, topic_name
from shared.kafka import Envelope, decode, encode
from tests import factories
from tests.kafka_utils import Kafka, read_topic

pytestmark = pytest.mark.integration
POLICY = publish.Policy(timedelta(seconds=60), timedelta(seconds=600))
RECIPIENTS = ("FR", "DE")


async def _responses(sm: async_sessionmaker[AsyncSession], ctx: Context, n: int) -> list[uuid.UUID]:
    """`n` responses, each about a selector that FR and DE registered cases on."""
    sel = factories.selector()
    ids = []
    async with transaction(sm) as s:
        for code in RECIPIENTS:
            actor = Actor(client_id=f"authority-{code.lower()}", jurisdiction=code)
            await cases.register(s, actor=actor, data=factories.case(selectors=[sel]), ctx=ctx)
        for _ in range(n):
            accepted = await responses.submit(
                s,
                platform="telegram",
                client_id="platform-telegram",
                ctx=ctx,
                data=factories.response(selectors=[sel], disclosures=[factories.disclosure(sel)]),
            )
            ids.append(accepted.id)
    return ids


async def _records(
    kafka: Kafka, bootstrap: str, topic: str, values: list[uuid.UUID | bytes]
) -> list[ConsumerRecord[bytes, bytes]]:
    """One record per value on one partition, in order: a `ResponseReceived` for a response
    id, raw bytes as given (poison); read back from the broker as the router would fetch them."""
    producer, provisioner = kafka
    await provisioner.ensure({topic})
    for value in values:
        event = ResponseReceived(
            response_id=value if isinstance(value, uuid.UUID) else uuid.uuid4(),
            platform="telegram",
            handling_code="H0",
            emergency=False,
            received_at=datetime.now(UTC),
        )
        body, headers = encode(event, ce_id=uuid.uuid4(), subject=str(event.response_id))
        raw = value if isinstance(value, bytes) else body
        await (await producer.send(topic, raw, key=b"k", partition=0, headers=headers))
    return await read_topic(bootstrap, topic, expect=len(values))


def _tp(records: list[ConsumerRecord[bytes, bytes]]) -> TopicPartition:
    return TopicPartition(records[0].topic, records[0].partition)


def _consumer(
    kafka: Kafka,
    sm: async_sessionmaker[AsyncSession],
    ctx: Context,
    *,
    size: int,
    deliveries: int | None = None,
) -> tuple[ResponseConsumer, list[list[uuid.UUID]]]:
    """The router's consumer over the real fan-out, remembering each batch it was handed."""
    producer, provisioner = kafka
    batches: list[list[uuid.UUID]] = []

    async def run(ids: list[uuid.UUID]) -> int:
        result = await fanout.process_responses(
            sm, producer, provisioner, response_ids=ids, prefix=ctx.topic_prefix, policy=POLICY
        )
        return result.sealed

    async def one(envelope: Envelope) -> None:
        assert isinstance(envelope.event, ResponseReceived)
        await run([envelope.event.response_id])

    async def many(envelopes: list[Envelope]) -> int:
        ids = [e.event.response_id for e in envelopes if isinstance(e.event, ResponseReceived)]
        batches.append(ids)
        return await run(ids)

    consumer = ResponseConsumer(
        None,  # `_partition` never touches the Kafka consumer
        producer,
        provisioner,
        handler=one,
        dlq_topic=topic_name(ctx.topic_prefix, "dlq"),
        metrics=RouterMetrics(),
        batch_handler=many,
        batch_size=size,
        batch_deliveries=deliveries,
    )
    return consumer, batches


async def _states(sm: async_sessionmaker[AsyncSession], ids: list[uuid.UUID]) -> list[str]:
    async with transaction(sm) as s:
        found = {
            r.id: r.fanout_state
            for r in (
                await s.scalars(select(CooperationResponse).where(CooperationResponse.id.in_(ids)))
            ).all()
        }
    return [found[i] for i in ids]


async def _inbox_ids(bootstrap: str, prefix: str, code: str) -> list[str]:
    records = await read_topic(bootstrap, topic_name(prefix, "inbox", code), settle=0.3)
    return [decode(r.value, r.headers).ce_id for r in records]


@pytest.mark.parametrize("poison", ["unknown response", "not json"])
async def test_a_poison_record_inside_a_batch_sinks_only_itself(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    kafka: Kafka,
    broker: EmbeddedTansu,
    poison: str,
) -> None:
    good = await _responses(sessionmaker, ctx, 4)
    bad: uuid.UUID | bytes = uuid.uuid4() if poison == "unknown response" else b"{not json"
    source = f"{ctx.topic_prefix}.responses.v1"
    records = await _records(kafka, broker.bootstrap, source, [*good[:2], bad, *good[2:]])
    consumer, batches = _consumer(kafka, sessionmaker, ctx, size=8)

    _, committed = await consumer._partition(_tp(records), records, asyncio.Event())

    assert committed == records[-1].offset + 1
    assert await _states(sessionmaker, good) == ["completed"] * 4
    # an unknown response reaches the batch and fails it; an unreadable record never does
    assert batches == ([[*good[:2], bad, *good[2:]]] if isinstance(bad, uuid.UUID) else [])
    [dead] = await read_topic(broker.bootstrap, topic_name(ctx.topic_prefix, "dlq"), expect=1)
    assert (dead.value, dead.offset) == (records[2].value, 0)
    assert dict(dead.headers)["dlq_offset"] == str(records[2].offset).encode()
    for code in RECIPIENTS:
        expected = {str(fanout.delivery_id(r, code)) for r in good}
        assert sorted(await _inbox_ids(broker.bootstrap, ctx.topic_prefix, code)) == sorted(
            expected
        )


async def test_a_crash_between_produce_and_mark_replays_the_same_delivery_ids(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    kafka: Kafka,
    broker: EmbeddedTansu,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    producer, provisioner = kafka
    ids = await _responses(sessionmaker, ctx, 3)

    class Crash(Exception):
        """The process dies here: after the broker acknowledged, before the marking commits."""

    async def crash(*_args: object, **_kwargs: object) -> None:
        raise Crash

    monkeypatch.setattr(fanout, "mark_published", crash)
    with pytest.raises(Crash):
        await fanout.process_responses(
            sessionmaker,
            producer,
            provisioner,
            response_ids=ids,
            prefix=ctx.topic_prefix,
            policy=POLICY,
        )
    first = {
        code: await _inbox_ids(broker.bootstrap, ctx.topic_prefix, code) for code in RECIPIENTS
    }
    assert await _states(sessionmaker, ids) == ["routed"] * 3
    monkeypatch.undo()

    replayed = await fanout.process_responses(
        sessionmaker,
        producer,
        provisioner,
        response_ids=ids,
        prefix=ctx.topic_prefix,
        policy=POLICY,
    )

    assert (replayed.produced, replayed.excluded) == (6, 0)  # decided before: nothing new
    assert await _states(sessionmaker, ids) == ["completed"] * 3
    for code in RECIPIENTS:
        expected = [str(fanout.delivery_id(r, code)) for r in ids]
        assert sorted(first[code]) == sorted(expected)
        again = await _inbox_ids(broker.bootstrap, ctx.topic_prefix, code)
        assert sorted(again) == sorted(expected * 2)  # the same ids, published twice
    async with transaction(sessionmaker) as s:
        rows = (await s.scalars(select(Delivery).where(Delivery.response_id.in_(ids)))).all()
    assert sorted((d.id, d.state, d.attempts) for d in rows) == sorted(
        (fanout.delivery_id(r, code), "published", 1) for r in ids for code in RECIPIENTS
    )


async def test_no_batch_is_larger_than_the_bound_and_order_is_kept(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    kafka: Kafka,
    broker: EmbeddedTansu,
) -> None:
    ids = await _responses(sessionmaker, ctx, 5)
    source = f"{ctx.topic_prefix}.responses.v1"
    records = await _records(kafka, broker.bootstrap, source, list(ids))
    consumer, batches = _consumer(kafka, sessionmaker, ctx, size=2)

    _, committed = await consumer._partition(_tp(records), records, asyncio.Event())

    assert committed == records[-1].offset + 1
    assert batches == [ids[0:2], ids[2:4]]  # the last one alone takes the single path
    assert await _states(sessionmaker, ids) == ["completed"] * 5


async def test_batches_shrink_to_the_delivery_budget_once_responses_prove_large(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    kafka: Kafka,
    broker: EmbeddedTansu,
) -> None:
    ids = await _responses(sessionmaker, ctx, 7)
    source = f"{ctx.topic_prefix}.responses.v1"
    records = await _records(kafka, broker.bootstrap, source, list(ids))
    budget = 2 * len(RECIPIENTS)  # room for the deliveries of two responses
    consumer, batches = _consumer(kafka, sessionmaker, ctx, size=4, deliveries=budget)
    assert consumer.group_size() == 4  # nothing sealed yet: the bound

    _, committed = await consumer._partition(_tp(records), records, asyncio.Event())

    assert committed == records[-1].offset + 1
    # the first batch sealed len(RECIPIENTS) per response, so the next take only two; the
    # last one alone takes the single path
    assert batches == [ids[0:4], ids[4:6]]
    assert consumer.group_size() == 2
    assert await _states(sessionmaker, ids) == ["completed"] * 7


async def test_a_stopping_consumer_commits_only_whole_batches(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    kafka: Kafka,
    broker: EmbeddedTansu,
) -> None:
    ids = await _responses(sessionmaker, ctx, 4)
    source = f"{ctx.topic_prefix}.responses.v1"
    records = await _records(kafka, broker.bootstrap, source, list(ids))
    consumer, batches = _consumer(kafka, sessionmaker, ctx, size=2)
    stop = asyncio.Event()
    handler = consumer._batch_handler
    assert handler is not None

    async def then_stop(envelopes: list[Envelope]) -> int:
        sealed = await handler(envelopes)
        stop.set()  # SIGTERM while the first batch was in flight
        return sealed

    consumer._batch_handler = then_stop
    _, committed = await consumer._partition(_tp(records), records, stop)

    assert committed == records[1].offset + 1
    assert batches == [ids[0:2]]
    assert await _states(sessionmaker, ids) == ["completed", "completed", "received", "received"]
