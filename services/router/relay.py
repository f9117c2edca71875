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
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.models import OutboxEvent
from shared.db import transaction
from shared.events import EVENT_TYPES
from shared.kafka import TopicProvisioner, encode_payload

logger = logging.getLogger(__name__)

RELAY_LOCK_KEY = 0x0CA5E5A0E1A1
CHANNEL = "caseshare_outbox"


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

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until `stop`; reconnects after any database or broker failure."""
        while not stop.is_set():
            try:
                await self._lead(stop)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("outbox relay interrupted; retrying", exc_info=True)
                await _sleep_or_stop(stop, 1.0)

    async def _lead(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY):
                if await _sleep_or_stop(stop, 2.0):
                    return
            await conn.add_listener(CHANNEL, lambda *_: self._wake.set())
            while not stop.is_set():
                published = await self.publish_batch()
                if published < self._batch:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), 0.5)
        finally:
            await conn.close()

    async def publish_batch(self) -> int:
        """Publish up to one batch of unpublished events; returns how many."""
        async with transaction(self._sm) as session:
            rows = (
                await session.scalars(
                    select(OutboxEvent)
                    .where(OutboxEvent.published_at.is_(None))
                    .order_by(OutboxEvent.id)
                    .limit(self._batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            await self._provisioner.ensure({r.topic for r in rows})
            futures = []
            for row in rows:
                value, headers = encode_payload(
                    row.payload,
                    event_type=EVENT_TYPES[row.event_type],
                    ce_id=row.event_id,
                    subject=row.subject,
                )
                futures.append(
                    await self._producer.send(
                        row.topic, value, key=row.key.encode(), headers=headers
                    )
                )
            for fut in futures:
                await fut
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id.in_([r.id for r in rows]))
                .values(published_at=datetime.now(UTC), attempts=OutboxEvent.attempts + 1)
            )
        if self._on_published:
            self._on_published(len(rows))
        return len(rows)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, waking early when asked to stop; True if stopping."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
