"""The outbox relay: publishes committed events in commit order, one leader at a time.

It wakes on PostgreSQL NOTIFY (sent by the outbox trigger) or every half second, holds a
session advisory lock so only one relay publishes (order per key is kept), and marks rows
published only after the broker acknowledged them: a crash re-publishes, never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer
from sqlalchemy import BigInteger, any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.store.models import OutboxEvent
from services.registry.store.outbox import CHANNEL
from services.router.leader import run_as_leader
from shared import tracing
from shared.db import transaction
from shared.events import EVENT_TYPES
from shared.kafka import TopicProvisioner, encode_payload

logger = logging.getLogger(__name__)

RELAY_LOCK_KEY = 0x0CA5E5A0E1A1


_MARK_PUBLISHED = (
    update(OutboxEvent)
    .where(OutboxEvent.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
    .values(published_at=bindparam("now"), attempts=OutboxEvent.attempts + 1)
    .execution_options(synchronize_session=False)  # the relay holds no outbox objects
)


def asyncpg_dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


class OutboxRelay:
    def __init__(
        self,
        sm: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer,
        provisioner: TopicProvisioner,
        *,
        database_url: str,
        batch: int,
        on_published: Callable[[int], None] | None = None,
    ) -> None:
        self._sm, self._producer, self._provisioner = sm, producer, provisioner
        self._dsn, self._batch = asyncpg_dsn(database_url), batch
        self._wake = asyncio.Event()
        self._on_published = on_published
        # built once: building a statement costs more than running these
        self._unpublished = (
            select(
                OutboxEvent.id,
                OutboxEvent.event_id,
                OutboxEvent.topic,
                OutboxEvent.key,
                OutboxEvent.event_type,
                OutboxEvent.subject,
                OutboxEvent.payload,
                OutboxEvent.traceparent,
            )
            .where(OutboxEvent.published_at.is_(None))
            .order_by(OutboxEvent.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until `stop`, leading when this instance holds the relay lock."""

        async def publish_while_leading(conn: asyncpg.Connection) -> None:
            await conn.add_listener(CHANNEL, lambda *_: self._wake.set())
            while not stop.is_set():
                # cleared before the round, not after: a commit notified while this round
                # publishes was not in its snapshot, and must wake the next one at once
                self._wake.clear()
                published = await self.publish_batch()
                if published < self._batch:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), 0.5)

        await run_as_leader(
            name="outbox relay",
            dsn=self._dsn,
            lock_key=RELAY_LOCK_KEY,
            stop=stop,
            lock_retry=2.0,
            failure_retry=1.0,
            work=publish_while_leading,
        )

    async def publish_batch(self) -> int:
        """Publish up to one batch of unpublished events; returns how many."""
        async with transaction(self._sm) as session:
            # plain rows, not ORM objects: a fan-out queues dozens of events and the relay only
            # reads them once, so identity-map bookkeeping per row is pure overhead
            rows = (await session.execute(self._unpublished)).all()
            if not rows:
                return 0
            await self._provisioner.ensure({r.topic for r in rows})
            send = self._producer.send
            traced = tracing.active()
            futures = []
            for row in rows:
                value, headers = encode_payload(
                    row.payload,
                    event_type=EVENT_TYPES[row.event_type],
                    ce_id=row.event_id,
                    subject=row.subject,
                )
                if traced:  # the publish joins the trace of the request that queued the event
                    with tracing.continued("outbox publish", traceparent=row.traceparent):
                        sent = await send(row.topic, value, key=row.key.encode(), headers=headers)
                else:
                    sent = await send(row.topic, value, key=row.key.encode(), headers=headers)
                futures.append(sent)
            for fut in futures:
                await fut
            await session.execute(
                _MARK_PUBLISHED, {"ids": [r.id for r in rows], "now": datetime.now(UTC)}
            )
        if self._on_published:
            self._on_published(len(rows))
        return len(rows)
