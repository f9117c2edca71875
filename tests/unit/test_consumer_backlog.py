"""What the reconciler asks the consumer before re-driving a response: is the consumer working
through a backlog, and still making progress?"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from services.router.consumer import ResponseConsumer
from services.router.metrics import RouterMetrics

TP = TopicPartition("caseshare.responses.v1", 0)


class Fetched:
    """The two things the backlog needs from an AIOKafkaConsumer."""

    def __init__(self) -> None:
        self.assigned = {TP}
        self.highwaters: dict[TopicPartition, int] = {}

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters.get(tp)


def record(offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(TP.topic, TP.partition, offset, 0, 0, b"k", b"v", None, 1, 1, [])


def consumer(fetched: Fetched, handled: list[int]) -> ResponseConsumer:
    responses = ResponseConsumer(
        fetched,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        handler=None,  # type: ignore[arg-type]
        dlq_topic="dlq",
        metrics=RouterMetrics(),
    )

    async def handle(rec: ConsumerRecord[bytes, bytes], _stop: Any) -> bool:
        handled.append(rec.offset)
        return True

    responses._handle = handle  # type: ignore[method-assign]
    return responses


async def test_idle_until_a_record_is_handled_then_busy_while_records_remain() -> None:
    fetched, handled = Fetched(), []
    responses = consumer(fetched, handled)
    fetched.highwaters[TP] = 500  # records of an earlier instance, long committed
    assert responses.backlog() == 0
    assert not responses.busy(10)

    await responses._partition(TP, [record(500), record(501)], asyncio.Event())
    fetched.highwaters[TP] = 520
    assert handled == [500, 501]
    assert responses.backlog() == 20
    assert responses.busy(10)
    assert not responses.busy(0)  # no progress within the window: stuck, not busy


@pytest.mark.parametrize("revoked", [True, False])
async def test_a_revoked_partition_no_longer_counts(revoked: bool) -> None:
    fetched, handled = Fetched(), []
    responses = consumer(fetched, handled)
    await responses._partition(TP, [record(7)], asyncio.Event())
    fetched.highwaters[TP] = 9
    if revoked:
        fetched.assigned = set()
    assert responses.backlog() == (0 if revoked else 2)
