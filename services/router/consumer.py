"""The router's consumer loop over `caseshare.responses.v1`.

Offsets are committed only after a record was fully handled. A poison record goes to the DLQ
with the error in its headers and the partition moves on; a transient failure (database or
broker down) is retried with capped backoff on the same record, so per-key order holds.

With a batch handler, the fetched records are handled in groups of up to `batch_size`, each
partition's in offset order, partitions sharing groups: whatever one fetch returned, never
waiting for more (that would cost latency at low rates). A group that fails for good (a poison
record in it) is handled again one record at a time, so only the bad record is dead-lettered;
a transient failure retries the whole group. Under tracing, records go one at a time, each in
its own trace. A group is also cut to about `batch_deliveries` sealed deliveries, by the
deliveries per response of the batch before: a batch holds all it seals until it is produced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from services.router.fanout import UnknownResponse
from services.router.metrics import RouterMetrics
from shared import tracing
from shared.events import ResponseReceived
from shared.kafka import Envelope, PoisonMessage, TopicProvisioner, decode, now

logger = logging.getLogger(__name__)

TRANSIENT = (OperationalError, DBAPIError, PoolTimeout, KafkaError, OSError, TimeoutError)
MAX_BACKOFF = 10.0
Handler = Callable[[Envelope], Awaitable[None]]
# returns the deliveries the batch sealed (0 for a replay), to size the next one
BatchHandler = Callable[[list[Envelope]], Awaitable[int]]


# A deadlock or a serialization failure aborts one of the transactions involved; the same
# work succeeds when tried again, so it is retried rather than dead-lettered.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and not exc.connection_invalidated:
        if getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
            return True
        # a constraint violation or bad SQL will not heal by waiting
        return isinstance(exc, OperationalError) or "connect" in str(exc).lower()
    return isinstance(exc, TRANSIENT)


class ResponseConsumer:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        provisioner: TopicProvisioner,
        *,
        handler: Handler,
        dlq_topic: str,
        metrics: RouterMetrics,
        batch_handler: BatchHandler | None = None,
        batch_size: int = 1,
        batch_deliveries: int | None = None,
    ) -> None:
        self._consumer, self._producer, self._provisioner = consumer, producer, provisioner
        self._handler, self._dlq, self._metrics = handler, dlq_topic, metrics
        self._batch_handler, self._batch_size = batch_handler, max(batch_size, 1)
        self._batch_deliveries = batch_deliveries
        self._per_response = 0.0  # deliveries sealed per response by the last batch
        self._positions: dict[TopicPartition, int] = {}
        self._handled_at = float("-inf")

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch, handle, commit, until `stop`; in-flight records finish before returning."""
        while not stop.is_set():
            fetched = await self._consumer.getmany(timeout_ms=200, max_records=200)
            offsets = await self._fetched(fetched, stop)
            if offsets:
                await self._consumer.commit(offsets)
                self._positions.update(offsets)
            self._update_lag()

    async def _fetched(
        self, fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]], stop: asyncio.Event
    ) -> dict[TopicPartition, int]:
        """Handle what one fetch returned; returns the offsets safe to commit.

        Each partition's records stay in offset order, and partitions keep none between them,
        so they share batches: one fan-out for the fetch, where a batch per partition split it
        into as many small transactions (at 50 responses/s, six of one or two responses each),
        each paying a batch's fixed cost on the same core."""
        records: list[ConsumerRecord[bytes, bytes]] = []
        for tp, got in fetched.items():
            if got:
                # the first record fetched is the first not yet committed: our backlog starts here
                self._positions[tp] = got[0].offset
                records += got
        committed: dict[TopicPartition, int] = {}
        first = 0
        while first < len(records):
            group = records[first : first + self.group_size()]
            handled = 0 if stop.is_set() else await self._handle_group(group, stop)
            for record in group[:handled]:
                committed[TopicPartition(record.topic, record.partition)] = record.offset + 1
            if handled:
                self._handled_at = time.monotonic()
            if handled < len(group):
                break  # stopping: the rest stays uncommitted and is redelivered
            first += len(group)
        return committed

    async def _partition(
        self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]], stop: asyncio.Event
    ) -> tuple[TopicPartition, int | None]:
        """Handle one partition's records in order; returns the offset safe to commit."""
        return tp, (await self._fetched({tp: records}, stop)).get(tp)

    def group_size(self) -> int:
        """Responses to take as the next batch: the bound, or fewer if the last batch sealed
        so many deliveries per response that this one would pass `batch_deliveries`."""
        if self._batch_deliveries is None or self._per_response <= 0:
            return self._batch_size
        fit = int(self._batch_deliveries // self._per_response)
        return max(1, min(self._batch_size, fit))

    async def _handle_group(
        self, group: list[ConsumerRecord[bytes, bytes]], stop: asyncio.Event
    ) -> int:
        """Handle `group` as one batch; returns how many of its records (in order) are done."""
        if self._batch_handler is None or len(group) == 1 or tracing.active():
            return await self._one_by_one(group, stop)
        envelopes = [_response_received(record) for record in group]
        if any(e is None for e in envelopes):
            return await self._one_by_one(group, stop)  # the poison record is parked in order
        delay = 0.2
        while True:
            try:
                sealed = await self._batch_handler([e for e in envelopes if e is not None])
                self._metrics.consumed.inc(len(group))
                if sealed:  # a replay seals nothing and says nothing of the next batch
                    self._per_response = sealed / len(group)
                return len(group)
            except Exception as exc:
                if not is_transient(exc):
                    logger.warning(
                        "batch failed; handling its records one by one",
                        extra={"records": len(group), "error": type(exc).__name__},
                    )
                    return await self._one_by_one(group, stop)
                logger.warning(
                    "transient failure; retrying the batch",
                    extra={"records": len(group), "error": type(exc).__name__, "delay": delay},
                )
            if stop.is_set():
                return 0
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    async def _one_by_one(
        self, group: list[ConsumerRecord[bytes, bytes]], stop: asyncio.Event
    ) -> int:
        handle = self._handle_traced if tracing.active() else self._handle
        for done, record in enumerate(group):
            if stop.is_set() or not await handle(record, stop):
                return done
        return len(group)

    async def _handle_traced(
        self, record: ConsumerRecord[bytes, bytes], stop: asyncio.Event
    ) -> bool:
        """`_handle` in a span continuing the trace in the record's `traceparent` header, so
        the fan-out and the inbox publishes join the trace of the response's submission."""
        with tracing.continued("route response", headers=record.headers):
            return await self._handle(record, stop)

    async def _handle(self, record: ConsumerRecord[bytes, bytes], stop: asyncio.Event) -> bool:
        self._metrics.consumed.inc()
        try:
            envelope = decode(record.value, record.headers)
            if not isinstance(envelope.event, ResponseReceived):
                raise PoisonMessage(f"unexpected event type {envelope.ce_type} on this topic")
        except PoisonMessage as exc:
            await self._dead_letter(record, exc)
            return True
        delay = 0.2
        while True:
            try:
                await self._handler(envelope)
                return True
            except UnknownResponse as exc:
                await self._dead_letter(record, exc)
                return True
            except Exception as exc:
                if not is_transient(exc):
                    logger.exception(
                        "handler failed; dead-lettering", extra={"ce_id": envelope.ce_id}
                    )
                    await self._dead_letter(record, exc)
                    return True
                logger.warning(
                    "transient failure; retrying",
                    extra={"ce_id": envelope.ce_id, "error": type(exc).__name__, "delay": delay},
                )
            if stop.is_set():
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], exc: BaseException) -> None:
        """Park the record, untouched, with why and where it came from."""
        headers = list(record.headers or ())
        headers += [
            ("dlq_error", type(exc).__name__.encode()),
            ("dlq_reason", str(exc)[:500].encode()),
            ("dlq_topic", record.topic.encode()),
            ("dlq_partition", str(record.partition).encode()),
            ("dlq_offset", str(record.offset).encode()),
            ("dlq_time", now().isoformat().encode()),
        ]
        await self._provisioner.ensure({self._dlq})
        await (await self._producer.send(self._dlq, record.value, key=record.key, headers=headers))
        self._metrics.dlq.inc()
        logger.error(
            "record dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error": type(exc).__name__,
            },
        )

    def backlog(self) -> int:
        """Records on our partitions not yet handled and committed, as of the last fetch.

        A partition we have not fetched a record from since it was assigned counts as empty:
        its backlog is unknown until then, and its records are fetched within milliseconds."""
        assigned = self._consumer.assignment()
        for gone in set(self._positions) - set(assigned):
            del self._positions[gone]
        total = 0
        for tp, position in self._positions.items():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                total += max(highwater - position, 0)
        return total

    def busy(self, within: float) -> bool:
        """Working through a backlog, and a record was handled in the last `within` seconds:
        whatever waits on our partitions will be reached without anyone's help."""
        return time.monotonic() - self._handled_at < within and self.backlog() > 0

    def _update_lag(self) -> None:
        self._metrics.lag.set(self.backlog())


def _response_received(record: ConsumerRecord[bytes, bytes]) -> Envelope | None:
    """The record's envelope if it is a well-formed `ResponseReceived`, else None (poison)."""
    try:
        envelope = decode(record.value, record.headers)
    except PoisonMessage:
        return None
    return envelope if isinstance(envelope.event, ResponseReceived) else None
