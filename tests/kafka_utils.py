"""Reading topics in tests the way an integrator would: from the beginning, without a group;
and producing to them as the router does."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka import TopicProvisioner, make_producer

Kafka = tuple[AIOKafkaProducer, TopicProvisioner]


@contextlib.asynccontextmanager
async def producing(bootstrap: str, *, partitions: int = 3) -> AsyncIterator[Kafka]:
    """A started producer and topic provisioner (new topics get `partitions`), stopped after."""
    producer = make_producer(bootstrap, client_id="test")
    provisioner = TopicProvisioner(bootstrap, partitions=partitions)
    await producer.start()
    await provisioner.start()
    try:
        yield producer, provisioner
    finally:
        await producer.stop()
        await provisioner.close()


async def existing_topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    expect: int | None = None,
    within: float = 10.0,
    settle: float = 0.5,
) -> list[ConsumerRecord[bytes, bytes]]:
    """All records of `topic`; waits for `expect` records, or for `settle` s of quiet."""
    if topic not in await existing_topics(bootstrap):
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + within
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            got = [r for rs in batch.values() for r in rs]
            if got:
                records.extend(got)
                quiet_since = time.monotonic()
            if expect is not None and len(records) >= expect:
                break
            if expect is None and time.monotonic() - quiet_since > settle:
                break
            await asyncio.sleep(0)
        return records
    finally:
        await consumer.stop()
