"""End-to-end latency at a fixed offered load, against the broker's own produce-to-consume.

Load is open-loop: requests start on a fixed schedule whatever the answers do, so a slow
system shows up as latency rather than as a politely lower rate. The clock starts before a
response is POSTed and stops when a bench consumer receives its delivery on an inbox topic.
The baseline produces the same number of same-size records on the same schedule, one per
recipient topic, with the services' producer settings, and times them to the same consumer.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench import workload
from bench.stack import Target
from services.router.app import PRODUCER_LINGER_MS
from shared.events import topic_name
from shared.kafka import TopicProvisioner, make_consumer, make_producer

# Long enough for a queue of 50 responses/s x 10 s to drain on a loaded machine.
SETTLE_SECONDS = 120.0


@dataclass
class Arrivals:
    """First receive time of each record, by the id that ties it to its send time, then by
    topic: a re-publication (same delivery again) is not a second sample."""

    at: dict[str, dict[str, float]] = field(default_factory=dict)


async def _consumer(bootstrap: str, topics: list[str]) -> AIOKafkaConsumer:
    """The services' consumer settings, assigned by hand and caught up to the end."""
    consumer = make_consumer(bootstrap, group_id=f"bench-{uuid.uuid4().hex}", client_id="bench")
    await consumer.start()
    tps = [
        TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())
    ]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    idle = 0
    while idle < 3:
        got = await consumer.getmany(timeout_ms=200, max_records=5000)
        idle = 0 if any(got.values()) else idle + 1
    return consumer


async def _collect(
    consumer: AIOKafkaConsumer, arrivals: Arrivals, ident: Callable[[bytes, bytes], str]
) -> None:
    while True:
        got = await consumer.getmany(timeout_ms=100, max_records=1000)
        now = time.perf_counter()
        for records in got.values():
            for r in records:
                by_topic = arrivals.at.setdefault(ident(r.key or b"", r.value or b""), {})
                by_topic.setdefault(r.topic, now)


async def _offered(
    rate: float, seconds: float, fire: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks: list[asyncio.Task[None]] = []
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        tasks.append(asyncio.create_task(fire()))
    await asyncio.gather(*tasks)


async def _measure(
    consumer: AIOKafkaConsumer,
    ident: Callable[[bytes, bytes], str],
    rate: float,
    seconds: float,
    fire: Callable[[dict[str, float]], Coroutine[Any, Any, None]],
    expect_per_send: int,
) -> list[float]:
    """Drive the schedule, wait for every record, and return latencies in milliseconds."""
    arrivals, sent = Arrivals(), dict[str, float]()
    collector = asyncio.create_task(_collect(consumer, arrivals, ident))
    try:
        await _offered(rate, seconds, lambda: fire(sent))
        deadline = time.perf_counter() + SETTLE_SECONDS
        while time.perf_counter() < deadline:
            if sum(len(arrivals.at.get(k, ())) for k in sent) >= expect_per_send * len(sent):
                break
            await asyncio.sleep(0.05)
    finally:
        collector.cancel()
    latencies = [(t - sent[k]) * 1000 for k in sent for t in arrivals.at.get(k, {}).values()]
    missing = expect_per_send * len(sent) - len(latencies)
    if missing > 0:
        raise RuntimeError(f"{missing} records not received within {SETTLE_SECONDS:.0f} s")
    return latencies


def _response_id(_key: bytes, value: bytes) -> str:
    try:
        return str(orjson.loads(value).get("response_id", ""))
    except orjson.JSONDecodeError:
        return ""


async def caseshare_latency(target: Target, *, rate: float, seconds: float) -> list[float]:
    """Response POSTed -> each of its five deliveries consumed from the inbox topics."""
    topics = [topic_name(target.topic_prefix, "inbox", c) for c in workload.RECIPIENTS]
    consumer = await _consumer(target.bootstrap, topics)
    try:
        async with httpx.AsyncClient(base_url=target.url("intake"), timeout=30) as http:
            handle = await workload.seed_cases(http, target)
            token = await asyncio.to_thread(target.token, f"platform-{workload.PLATFORM}")

            async def fire(sent: dict[str, float]) -> None:
                started = time.perf_counter()
                sent[await workload.submit(http, token, handle)] = started

            return await _measure(
                consumer, _response_id, rate, seconds, fire, len(workload.RECIPIENTS)
            )
    finally:
        await consumer.stop()


async def broker_latency(
    target: Target,
    record: tuple[bytes, bytes, list[tuple[str, bytes]]],
    *,
    rate: float,
    seconds: float,
) -> list[float]:
    """The same schedule straight through the broker: produce one record per recipient topic."""
    _key, value, headers = record
    topics = [f"bench.e2e.{uuid.uuid4().hex[:8]}.{c}" for c in workload.RECIPIENTS]
    provisioner = TopicProvisioner(target.bootstrap, partitions=6)
    await provisioner.start()
    await provisioner.ensure(set(topics))
    await provisioner.close()
    producer = make_producer(target.bootstrap, client_id="bench-e2e", linger_ms=PRODUCER_LINGER_MS)
    await producer.start()
    consumer = await _consumer(target.bootstrap, topics)
    try:

        async def fire(sent: dict[str, float]) -> None:
            key = uuid.uuid4().hex
            sent[key] = time.perf_counter()
            futures = [
                await producer.send(t, value, key=key.encode(), headers=headers) for t in topics
            ]
            await asyncio.gather(*futures)

        return await _measure(consumer, lambda k, _v: k.decode(), rate, seconds, fire, len(topics))
    finally:
        await consumer.stop()
        await producer.stop()
