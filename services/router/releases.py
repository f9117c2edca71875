"""The release sweep, run by the reconciler on every pass (one leader at a time).

Released deliveries: the originator decides over REST (intake), which only turns the held
delivery `pending` in the database. Publishing stays with the router, so a released delivery
goes out through the one publication path (same ce_id, same publication record, same
re-publication and failure handling) and a broker outage at decision time delays it instead
of failing the decision. The reconciler runs every few seconds (ROUTER_RECONCILE_INTERVAL), so
that is how promptly a release reaches the inbox topic.

Holds nobody decided on lapse (`release_lapsed`), after a reminder to the originator. The
clock is the caller's, so tests move time instead of waiting for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.releases import service as releases
from services.router.publish import Policy, load_outgoing, mark_published, produce
from shared.db import transaction
from shared.kafka import TopicProvisioner


@dataclass(frozen=True)
class Swept:
    """What one sweep did, for logs and tests."""

    published: int
    reminded: int
    lapsed: int


async def sweep(
    sm: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    provisioner: TopicProvisioner,
    *,
    prefix: str,
    policy: Policy,
    now: datetime,
    remind_before: timedelta,
) -> Swept:
    """Remind, lapse, then publish whatever was released since the last pass."""
    async with transaction(sm) as session:
        reminded = await releases.remind_due(
            session, now=now, remind_before=remind_before, prefix=prefix
        )
        lapsed = await releases.lapse_due(session, now=now, prefix=prefix)
    async with transaction(sm) as session:
        ids = await releases.released_unpublished(session)
        records = await load_outgoing(session, prefix=prefix, delivery_ids=ids) if ids else []
    if records:
        await produce(producer, provisioner, records)
        async with transaction(sm) as session:
            await mark_published(session, records=records, policy=policy, prefix=prefix)
    return Swept(published=len(records), reminded=reminded, lapsed=lapsed)
