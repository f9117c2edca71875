"""Router fan-out rate against raw produce of the same records to the same broker.

The router's figure is deliveries published per second, by the database clock, from the first
response received to the last of its deliveries published, for responses with five recipients
each. The baseline produces as many records, of the size of a real delivery, with the router's
own producer settings: once pipelined (the broker's ceiling), and once in acknowledged batches
of five (the pattern a per-response fan-out must follow, for context).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from dataclasses import dataclass

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench import workload
from bench.stack import Target
from services.router.app import PRODUCER_LINGER_MS
from shared.events import topic_name
from shared.kafka import TopicProvisioner, make_producer
from shared.kafka_security import client_kwargs

CONCURRENCY = 8


@dataclass(frozen=True)
class RouterRun:
    deliveries: int
    seconds: float
    submitted_seconds: float = 0.0  # first to last response accepted by intake

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds if self.seconds else 0.0

    @property
    def submitted_rate(self) -> float:
        """Intake's acceptance of the responses, counted in their deliveries: no router can be
        seen to publish faster than the responses arrive."""
        return self.deliveries / self.submitted_seconds if self.submitted_seconds else 0.0


async def fan_out(target: Target, *, responses: int) -> RouterRun:
    """Submit `responses` at once (bounded concurrency) and time until all are delivered."""
    return await _submit_and_time(target, responses=responses)


async def drain(target: Target, *, responses: int, pid: int) -> RouterRun:
    """The router working off a queue: the responses are submitted while its process is
    stopped (SIGSTOP), then timed from its resumption to the last delivery published. Batches
    fill as they would behind a backlog, and intake's rate no longer bounds the window."""
    return await _submit_and_time(target, responses=responses, paused=pid)


async def _submit_and_time(
    target: Target, *, responses: int, paused: int | None = None
) -> RouterRun:
    """Seed the recipients' cases, submit the responses (with the `paused` process stopped
    meanwhile, timed from its resumption) and wait until every delivery is published."""
    resumed = None
    async with httpx.AsyncClient(base_url=target.url("intake"), timeout=30) as http:
        handle = await workload.seed_cases(http, target)
        token = await asyncio.to_thread(target.token, f"platform-{workload.PLATFORM}")
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one() -> str:
            async with gate:
                return await workload.submit(http, token, handle)

        if paused is None:
            ids = await asyncio.gather(*(one() for _ in range(responses)))
        else:
            os.kill(paused, signal.SIGSTOP)
            try:
                ids = await asyncio.gather(*(one() for _ in range(responses)))
                resumed = await workload.database_now(target)
            finally:
                os.kill(paused, signal.SIGCONT)
    expect = responses * len(workload.RECIPIENTS)
    count, seconds, submitted = await workload.published_and_received(
        target, ids, expect=expect, within=120, since=resumed
    )
    if count < expect:
        raise RuntimeError(f"only {count} of {expect} deliveries published within 120 s")
    return RouterRun(count, seconds, submitted)


async def sample_record(target: Target) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """One real delivery record (key, value, headers), so the baseline sends the same size."""
    topic = topic_name(target.topic_prefix, "inbox", workload.RECIPIENTS[0])
    consumer = AIOKafkaConsumer(**client_kwargs(target.bootstrap), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        for _ in range(50):
            for records in (await consumer.getmany(timeout_ms=200, max_records=1)).values():
                r = records[0]
                return r.key or b"", r.value or b"", list(r.headers)
    finally:
        await consumer.stop()
    raise RuntimeError("no delivery record to copy")


async def raw_produce(
    target: Target, record: tuple[bytes, bytes, list[tuple[str, bytes]]], *, count: int, batch: int
) -> RouterRun:
    """Produce `count` copies of `record` over five topics; `batch` records per acked wait
    (`batch >= count`: everything in flight at once)."""
    key, value, headers = record
    run = uuid.uuid4().hex[:8]
    topics = [f"bench.raw.{run}.{code}" for code in workload.RECIPIENTS]
    provisioner = TopicProvisioner(target.bootstrap, partitions=6)
    producer = make_producer(target.bootstrap, client_id="bench-raw", linger_ms=PRODUCER_LINGER_MS)
    await provisioner.start()
    await producer.start()
    try:
        await provisioner.ensure(set(topics))
        started = time.perf_counter()
        for first in range(0, count, batch):
            futures = [
                await producer.send(topics[i % len(topics)], value, key=key, headers=headers)
                for i in range(first, min(first + batch, count))
            ]
            for fut in futures:
                await fut
        return RouterRun(count, time.perf_counter() - started)
    finally:
        await producer.stop()
        await provisioner.close()
