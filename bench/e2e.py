"""End-to-end latency at a fixed offered load, against the broker's own produce-to-consume.

Load is open-loop: requests start on a fixed schedule whatever the answers do, so a slow
system shows up as latency rather than as a politely lower rate. The clock starts before a
response is POSTed and stops when a bench consumer receives its delivery on an inbox topic.
The baseline produces the same number of same-size records on the same schedule, one per
recipient topic, with the services' producer settings, and times them to the same consumer.

`stages` says where caseshare's time goes, per response, from the POST's start to each step
the registry records on its way: every stamp is this machine's wall clock (the services write
them with `datetime.now()`, the deliveries' creation is PostgreSQL's transaction time, which
is the same clock), so they compare with the bench's own `time.time()`.
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
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench import stats, workload
from bench.stack import Target
from services.router.app import PRODUCER_LINGER_MS
from shared.events import (
    DeliveryPublished,
    JurisdictionsExcluded,
    ResponseReceived,
    topic_name,
)
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
    sent: dict[str, float] | None = None,
) -> tuple[list[float], Arrivals]:
    """Drive the schedule, wait for every record, and return latencies in milliseconds, with
    the arrivals they were taken from (`sent` fills with each send's start)."""
    arrivals, sent = Arrivals(), {} if sent is None else sent
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
    return latencies, arrivals


def _response_id(_key: bytes, value: bytes) -> str:
    try:
        return str(orjson.loads(value).get("response_id", ""))
    except orjson.JSONDecodeError:
        return ""


@dataclass(frozen=True)
class Caseshare:
    """caseshare's latencies (ms, one per delivery) and where each response's time went."""

    latencies: list[float]
    stages: dict[str, Any]


async def caseshare_latency(target: Target, *, rate: float, seconds: float) -> Caseshare:
    """Response POSTed -> each of its five deliveries consumed from the inbox topics."""
    topics = [topic_name(target.topic_prefix, "inbox", c) for c in workload.RECIPIENTS]
    consumer = await _consumer(target.bootstrap, topics)
    try:
        async with httpx.AsyncClient(base_url=target.url("intake"), timeout=30) as http:
            handle = await workload.seed_cases(http, target)
            token = await asyncio.to_thread(target.token, f"platform-{workload.PLATFORM}")
            sent, answered = dict[str, float](), dict[str, float]()

            async def fire(into: dict[str, float]) -> None:
                started = time.perf_counter()
                response_id = await workload.submit(http, token, handle)
                answered[response_id] = time.perf_counter()
                into[response_id] = started

            # perf_counter times the latencies; this turns them into wall-clock stamps
            wall = time.time() - time.perf_counter()
            latencies, arrivals = await _measure(
                consumer, _response_id, rate, seconds, fire, len(workload.RECIPIENTS), sent
            )
    finally:
        await consumer.stop()
    stamps = await _registry_stamps(target, list(sent))
    return Caseshare(latencies, stages(sent, answered, arrivals, stamps, wall))


# Per response, by the clock of whoever wrote it: intake's `received_at` (its handler, inside
# the transaction); the relay's `published_at` on the `ResponseReceived` outbox row (after the
# broker's ack); the fan-out transaction's start (`created_at` of the outbox rows it queues is
# PostgreSQL's now(), the transaction's start: the exclusion summary's, else the deliveries'
# own decision time); the last delivery's `published_at` (the router, after the broker's ack);
# and the start of the transaction that marks them published, shared by a batch.
_STAMPS = text(
    "SELECT r.id::text, extract(epoch FROM r.received_at), extract(epoch FROM o.relayed),"
    " extract(epoch FROM coalesce(o.begun, min(d.created_at))),"
    " extract(epoch FROM max(d.published_at)), extract(epoch FROM o.marked)"
    " FROM responses r JOIN deliveries d ON d.response_id = r.id"
    " JOIN (SELECT key,"
    "   max(published_at) FILTER (WHERE event_type = :received) AS relayed,"
    "   min(created_at) FILTER (WHERE event_type = :excluded) AS begun,"
    "   min(created_at) FILTER (WHERE event_type = :published) AS marked"
    "   FROM outbox WHERE key = ANY(:ids) GROUP BY key) o ON o.key = r.id::text"
    " WHERE r.id::text = ANY(:ids) GROUP BY r.id, o.relayed, o.begun, o.marked"
)


async def _registry_stamps(target: Target, response_ids: list[str]) -> dict[str, list[float]]:
    engine = create_async_engine(target.database_url, pool_size=1)
    types = {
        "received": ResponseReceived.TYPE,
        "excluded": JurisdictionsExcluded.TYPE,
        "published": DeliveryPublished.TYPE,
    }
    try:
        async with engine.connect() as conn:
            # the bench may receive a delivery before the router has marked it published
            for _ in range(100):
                rows = (await conn.execute(_STAMPS, {"ids": response_ids, **types})).all()
                await conn.commit()
                stamps = {r[0]: [float(v) for v in r[1:]] for r in rows if None not in r}
                if len(stamps) == len(response_ids):
                    break
                await asyncio.sleep(0.1)
            return stamps
    finally:
        await engine.dispose()


# Each step, from the milestone before it; the POST's answer is a branch (after the commit).
STEPS = ("intake", "relay", "router_pickup", "fanout", "reader", "answered", "total")


def stages(
    sent: dict[str, float],
    answered: dict[str, float],
    arrivals: Arrivals,
    stamps: dict[str, list[float]],
    wall: float,
) -> dict[str, Any]:
    """p50/p99 (ms) of each step of each response, and the fan-out batch sizes seen.

    intake: the POST's start to `received_at`; relay: to the relay's ack of ResponseReceived
    (the rest of intake's transaction, its commit and NOTIFY, the relay's round); router_pickup:
    to the fan-out transaction's start (the router's fetch and its consumer loop); fanout: to the
    last delivery's ack; reader: to the last of them consumed here; answered: the POST's
    answer; total: the POST's start to the last delivery consumed."""
    steps: dict[str, list[float]] = {name: [] for name in STEPS}
    batches: dict[float, int] = {}
    for rid, (received, relayed, picked, published, marked) in stamps.items():
        start, got = sent[rid] + wall, arrivals.at.get(rid, {})
        if not got:
            continue
        consumed = max(got.values()) + wall
        marks = (start, received, relayed, picked, published, consumed)
        for name, before, after in zip(STEPS[:5], marks[:-1], marks[1:], strict=True):
            steps[name].append((after - before) * 1000)
        steps["answered"].append((answered[rid] - sent[rid]) * 1000)
        steps["total"].append((consumed - start) * 1000)
        batches[marked] = batches.get(marked, 0) + 1  # one transaction start per batch
    out: dict[str, Any] = {
        name: {"p50": stats.percentile(v, 50), "p99": stats.percentile(v, 99)}
        for name, v in steps.items()
        if v
    }
    sizes = list(batches.values())
    if sizes:
        out["batch"] = {"count": len(sizes), "mean": sum(sizes) / len(sizes), "max": max(sizes)}
    return out


def describe(stages: dict[str, Any]) -> str:
    """One line: each step's p50/p99, then the fan-out batches."""
    parts = [f"{n} {stages[n]['p50']:.1f}/{stages[n]['p99']:.1f}" for n in STEPS if n in stages]
    if "batch" in stages:
        b = stages["batch"]
        parts.append(f"batches {b['count']} (mean {b['mean']:.1f}, max {b['max']})")
    return "; ".join(parts)


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

        latencies, _ = await _measure(
            consumer, lambda k, _v: k.decode(), rate, seconds, fire, len(topics)
        )
        return latencies
    finally:
        await consumer.stop()
        await producer.stop()
