"""One fetch, one fan-out: the router's consumer batches a fetch's records across partitions,
each partition's in offset order, and commits each partition only as far as it handled."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from aiokafka import ConsumerRecord, TopicPartition

from services.router.consumer import ResponseConsumer
from services.router.metrics import RouterMetrics
from shared.events import ResponseReceived
from shared.kafka import Envelope, encode

TOPIC = "caseshare.responses.v1"


def received(tp: TopicPartition, offset: int) -> tuple[uuid.UUID, ConsumerRecord[bytes, bytes]]:
    response_id = uuid.uuid4()
    event = ResponseReceived(
        response_id=response_id,
        platform="telegram",
        handling_code="H0",
        emergency=False,
        received_at=datetime.now(UTC),
    )
    value, headers = encode(event, ce_id=uuid.uuid4(), subject=str(response_id))
    record = ConsumerRecord(
        tp.topic, tp.partition, offset, 0, 0, b"k", value, None, len(value), 1, headers
    )
    return response_id, record


def consumer(
    batches: list[list[uuid.UUID]], *, size: int, stop_after: int = 0
) -> tuple[ResponseConsumer, asyncio.Event]:
    stop = asyncio.Event()

    async def many(envelopes: list[Envelope]) -> int:
        ids = [e.event.response_id for e in envelopes if isinstance(e.event, ResponseReceived)]
        batches.append(ids)
        if stop_after and len(batches) >= stop_after:
            stop.set()  # SIGTERM while this batch was in flight
        return 5 * len(ids)

    responses = ResponseConsumer(
        None,  # `_fetched` never touches the Kafka consumer
        None,
        None,  # type: ignore[arg-type]
        handler=None,  # type: ignore[arg-type]
        dlq_topic="dlq",
        metrics=RouterMetrics(),
        batch_handler=many,
        batch_size=size,
    )
    return responses, stop


async def test_one_fetch_of_several_partitions_is_one_batch_in_partition_order() -> None:
    tp0, tp3 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 3)
    a = [received(tp0, 40), received(tp0, 41)]
    b = [received(tp3, 7), received(tp3, 8), received(tp3, 9)]
    batches: list[list[uuid.UUID]] = []
    responses, stop = consumer(batches, size=32)

    committed = await responses._fetched({tp0: [r for _, r in a], tp3: [r for _, r in b]}, stop)

    assert batches == [[i for i, _ in a] + [i for i, _ in b]]
    assert committed == {tp0: 42, tp3: 10}


async def test_a_stop_between_batches_commits_each_partition_only_as_far_as_handled() -> None:
    tp0, tp1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    a = [received(tp0, o) for o in (10, 11, 12)]
    b = [received(tp1, o) for o in (20, 21)]
    batches: list[list[uuid.UUID]] = []
    responses, stop = consumer(batches, size=2, stop_after=2)

    committed = await responses._fetched({tp0: [r for _, r in a], tp1: [r for _, r in b]}, stop)

    # [a10, a11] then [a12, b20]; stopped before [b21]: it stays uncommitted, redelivered
    assert batches == [[a[0][0], a[1][0]], [a[2][0], b[0][0]]]
    assert committed == {tp0: 13, tp1: 21}
