"""Retention: what the registry may forget, deleted in bounded batches.

Two tables only grow otherwise. Published outbox events are kept for a retention period that
covers the reconciler's replay window (a broker that lost its data is healed from them); a
fan-out alone writes about 45. Idempotency keys are kept for their time to live: a retry
within it gets the first answer, a later one is a new request. Both are found by `created_at`
through BRIN indexes (rows arrive in time order, so a few block ranges hold the old ones).
Unpublished events, cases, responses, delivery metadata and the audit log are never touched.

Delivery payloads end too: a ciphertext is deleted once its delivery has been acknowledged for
the payload retention period (`evidence.service.expire_payloads`, a signed deletion record
each), when the caller passes `payloads_before`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.evidence import service as evidence
from services.registry.store.models import IdempotencyKey, OutboxEvent

BATCH = 1000  # rows per DELETE, so one pass never holds many locks or a long transaction


@dataclass(frozen=True)
class Pruned:
    outbox: int
    keys: int
    payloads: int = 0

    def full(self, batch: int) -> bool:
        """True when some table filled its batch: call `prune` again."""
        return max(self.outbox, self.keys, self.payloads) >= batch


async def prune(
    session: AsyncSession,
    *,
    outbox_before: datetime,
    keys_before: datetime,
    batch: int = BATCH,
    payloads_before: datetime | None = None,
    prefix: str = "caseshare",
) -> Pruned:
    """Delete up to `batch` published outbox events created before `outbox_before`, up to
    `batch` idempotency keys created before `keys_before` and, with `payloads_before`, the
    ciphertexts of up to `batch` deliveries acknowledged before it (events under `prefix`);
    call again while a count equals `batch`."""
    old_events = (
        select(OutboxEvent.id)
        .where(OutboxEvent.created_at < outbox_before, OutboxEvent.published_at.is_not(None))
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    events = await session.execute(
        delete(OutboxEvent)
        .where(OutboxEvent.id.in_(old_events.scalar_subquery()))
        .returning(OutboxEvent.id)
    )
    old_keys = (
        select(IdempotencyKey.client_id, IdempotencyKey.key)
        .where(IdempotencyKey.created_at < keys_before)
        .limit(batch)
        .with_for_update(skip_locked=True)
        .subquery()
    )
    keys = await session.execute(
        delete(IdempotencyKey)
        .where(
            IdempotencyKey.client_id == old_keys.c.client_id,
            IdempotencyKey.key == old_keys.c.key,
        )
        .returning(IdempotencyKey.key)
    )
    payloads = 0
    if payloads_before is not None:
        payloads = await evidence.expire_payloads(
            session, before=payloads_before, prefix=prefix, batch=batch
        )
    return Pruned(outbox=len(events.all()), keys=len(keys.all()), payloads=payloads)
