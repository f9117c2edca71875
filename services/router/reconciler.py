"""The reconciler: PostgreSQL is the source of truth, so whatever transport lost is healed.

Each pass (one leader at a time) re-provisions topics if the broker came back empty, replays
recently published outbox events after such a wipe, re-drives fan-outs that stalled, and
re-publishes deliveries that were not acknowledged in time, under the same delivery id, with
capped exponential backoff, until they fail with an alert event after the last attempt. It also
publishes deliveries their originator released, and lapses holds nobody decided on
(`services.router.releases`).
Once a minute it also applies retention (`services.registry.store.retention`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaProducer
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.audit import service as audit
from services.registry.deliveries.models import Delivery
from services.registry.deliveries.rules import DeliveryState, FanoutState
from services.registry.evidence import service as evidence
from services.registry.evidence.rules import EvidenceKind
from services.registry.reference.models import Jurisdiction, Platform
from services.registry.releases import rules as release_rules
from services.registry.responses.models import CooperationResponse
from services.registry.store import outbox, retention
from services.registry.store.models import OutboxEvent
from services.router import publish, releases, topics
from services.router.leader import run_as_leader, sleep_or_stop
from services.router.metrics import RouterMetrics
from services.router.relay import asyncpg_dsn
from shared.db import transaction
from shared.events import DeliveryFailed
from shared.kafka import TopicProvisioner

logger = logging.getLogger(__name__)

RECONCILER_LOCK_KEY = 0x0CA5E5A0EC0C
BATCH = 200
# Longer than a produce request may take (the producer's request timeout is 15 s).
SECOND_HEAL_AFTER = 20.0
PRUNE_EVERY = 60.0  # seconds between retention passes
Redrive = Callable[[uuid.UUID], Awaitable[int]]
# Is this instance's consumer working through a backlog, with progress in the last N seconds?
QueueBusy = Callable[[float], bool]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _never_busy(_within: float) -> bool:
    return False


class Reconciler:
    def __init__(
        self,
        sm: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer,
        provisioner: TopicProvisioner,
        *,
        database_url: str,
        prefix: str,
        policy: publish.Policy,
        max_attempts: int,
        redrive_after: timedelta,
        replay_window: timedelta,
        interval: float,
        redrive: Redrive,
        metrics: RouterMetrics,
        queue_busy: QueueBusy = _never_busy,
        outbox_retention: timedelta | None = None,
        key_ttl: timedelta | None = None,
        release_reminder: timedelta = release_rules.DEFAULT_REMINDER,
        clock: Callable[[], datetime] = _utcnow,
        payload_retention: timedelta | None = None,
        deletion_reminder: timedelta | None = None,
    ) -> None:
        self._sm, self._producer, self._provisioner = sm, producer, provisioner
        self._dsn, self._prefix, self._policy = asyncpg_dsn(database_url), prefix, policy
        self._max_attempts, self._redrive_after = max_attempts, redrive_after
        self._replay_window, self._interval = replay_window, interval
        self._redrive, self._metrics, self._queue_busy = redrive, metrics, queue_busy
        self._stop = asyncio.Event()
        self._second_heal_at: float | None = None
        self._outbox_retention = outbox_retention or max(replay_window, timedelta(days=7))
        self._key_ttl = key_ttl or timedelta(days=1)
        self._payload_retention = payload_retention or timedelta(days=90)
        self._deletion_reminder = deletion_reminder or timedelta(days=1)
        self._prune_at = 0.0  # monotonic time of the next retention pass
        self._release_reminder, self._clock = release_reminder, clock

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until `stop`, reconciling when this instance holds the reconciler lock."""
        self._stop = stop

        async def reconcile_while_leading(_conn: asyncpg.Connection) -> None:
            while not stop.is_set():
                await self.run_once()
                await sleep_or_stop(stop, self._interval)

        await run_as_leader(
            name="reconciler",
            dsn=self._dsn,
            lock_key=RECONCILER_LOCK_KEY,
            stop=stop,
            lock_retry=self._interval,
            failure_retry=self._interval,
            work=reconcile_while_leading,
        )

    async def run_once(self) -> None:
        """One full pass; public so tests can drive it deterministically."""
        await self.provision()
        if self._second_heal_at is not None and time.monotonic() >= self._second_heal_at:
            self._second_heal_at = None
            await self.heal()
        await self.redrive_stalled()
        await self.republish_due()
        await self.sweep_releases()
        if time.monotonic() >= self._prune_at:
            self._prune_at = time.monotonic() + PRUNE_EVERY
            await self.prune()

    async def sweep_releases(self) -> releases.Swept:
        """Publish released deliveries; remind of and lapse undecided holds."""
        return await releases.sweep(
            self._sm,
            self._producer,
            self._provisioner,
            prefix=self._prefix,
            policy=self._policy,
            now=self._clock(),
            remind_before=self._release_reminder,
        )

    async def prune(self) -> retention.Pruned:
        """Forget published events past retention, expired idempotency keys and delivery
        payloads past theirs, in batches; then remind recipients of unconfirmed deletions."""
        total = retention.Pruned(outbox=0, keys=0)
        while not self._stop.is_set():
            now = datetime.now(UTC)
            async with transaction(self._sm) as session:
                done = await retention.prune(
                    session,
                    outbox_before=now - self._outbox_retention,
                    keys_before=now - self._key_ttl,
                    payloads_before=now - self._payload_retention,
                    prefix=self._prefix,
                )
            total = retention.Pruned(
                total.outbox + done.outbox, total.keys + done.keys, total.payloads + done.payloads
            )
            if not done.full(retention.BATCH):
                break
        async with transaction(self._sm) as session:
            reminded = await evidence.remind(
                session, now=datetime.now(UTC), every=self._deletion_reminder, prefix=self._prefix
            )
        if total.outbox or total.keys or total.payloads or reminded:
            counts = {
                "outbox_events": total.outbox,
                "idempotency_keys": total.keys,
                "payloads": total.payloads,
                "deletion_reminders": reminded,
            }
            logger.info("retention pass", extra=counts)
        return total

    async def required_topics(self) -> set[str]:
        async with transaction(self._sm) as session:
            codes = (await session.scalars(select(Jurisdiction.code))).all()
            slugs = (await session.scalars(select(Platform.slug))).all()
        return topics.required_topics(self._prefix, codes, slugs)

    async def provision(self) -> None:
        """Create missing topics; if any were missing, the broker lost data: replay it."""
        created = await self._provisioner.ensure(await self.required_topics())
        if not created:
            return
        logger.warning(
            "broker lost topics; re-provisioned and replaying", extra={"topics": len(created)}
        )
        await self.heal()
        # A produce already in flight when the broker came back empty may have gone to a
        # missing topic (Tansu acknowledges it and drops it) and be marked published after the
        # heal above. Heal once more when every such produce must have finished.
        self._second_heal_at = time.monotonic() + SECOND_HEAL_AFTER

    async def heal(self) -> None:
        """Replay recent outbox events and make every unacknowledged delivery due now."""
        since = datetime.now(UTC) - self._replay_window
        async with transaction(self._sm) as session:
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.published_at >= since)
                .values(published_at=None)
            )
            await session.execute(
                update(Delivery)
                .where(Delivery.state == DeliveryState.PUBLISHED)
                .values(next_attempt_at=datetime.now(UTC))
            )

    async def redrive_stalled(self) -> None:
        """Responses whose fan-out began but did not complete (a crash, a lost record).

        A response still `received` while our consumer works through a backlog is queued, not
        stalled: re-driving it would do the consumer's work twice (and publish twice), exactly
        when the router is saturated. It is re-driven once the consumer is idle or stops making
        progress. A fan-out that began (`routed`) is judged by when it began. Other instances'
        consumers are not seen here; their queued responses are re-driven by age as before."""
        cutoff = datetime.now(UTC) - self._redrive_after
        stalled_routed = (CooperationResponse.fanout_state == FanoutState.ROUTED) & (
            CooperationResponse.routed_at < cutoff
        )
        never_started = (CooperationResponse.fanout_state == FanoutState.RECEIVED) & (
            CooperationResponse.received_at < cutoff
        )
        queued = self._queue_busy(self._redrive_after.total_seconds())
        async with transaction(self._sm) as session:
            stalled = (
                await session.scalars(
                    select(CooperationResponse.id)
                    .where(stalled_routed if queued else or_(stalled_routed, never_started))
                    .order_by(CooperationResponse.received_at)
                    .limit(BATCH)
                )
            ).all()
        for response_id in stalled:
            if self._stop.is_set():
                return  # the rest is re-driven by the next pass, here or elsewhere
            await self._redrive(response_id)
            self._metrics.redrives.labels(kind="fanout").inc()

    async def republish_due(self) -> None:
        """Re-publish unacknowledged deliveries whose wait ran out; fail the exhausted ones."""
        now = datetime.now(UTC)
        async with transaction(self._sm) as session:
            due = (
                await session.scalars(
                    select(Delivery)
                    .where(
                        Delivery.state == DeliveryState.PUBLISHED, Delivery.next_attempt_at <= now
                    )
                    .order_by(Delivery.next_attempt_at)
                    .limit(BATCH)
                )
            ).all()
            exhausted = [d for d in due if d.attempts >= self._max_attempts]
            for d in exhausted:
                await self._fail(session, d, now)
            retry = [d.id for d in due if d.attempts < self._max_attempts]
            records = await publish.load_outgoing(session, prefix=self._prefix, delivery_ids=retry)
        if not records:
            return
        await publish.produce(self._producer, self._provisioner, records)
        async with transaction(self._sm) as session:
            await publish.mark_published(
                session, records=records, policy=self._policy, prefix=self._prefix
            )
        self._metrics.redrives.labels(kind="delivery").inc(len(records))

    async def _fail(self, session: AsyncSession, d: Delivery, now: datetime) -> None:
        d.state, d.failed_at, d.next_attempt_at = DeliveryState.FAILED, now, None
        event = DeliveryFailed(
            delivery_id=d.id,
            response_id=d.response_id,
            jurisdiction=d.jurisdiction,
            attempts=d.attempts,
            failed_at=now,
        )
        outbox.add(session, event, key=str(d.response_id), subject=str(d.id), prefix=self._prefix)
        digest = await audit.append(
            session,
            actor="reconciler",
            action="delivery.failed",
            subject_type="delivery",
            subject_id=str(d.id),
            details={"jurisdiction": d.jurisdiction, "attempts": d.attempts},
        )
        await evidence.record(
            session,
            evidence.Fact(
                EvidenceKind.NOT_RETRIEVED,
                "delivery",
                str(d.id),
                "reconciler",
                response_id=d.response_id,
                delivery_id=d.id,
                details={"jurisdiction": d.jurisdiction, "attempts": d.attempts},
                audit_digest=digest,
            ),
        )
        self._metrics.failed.inc()
        logger.error(
            "delivery failed after max attempts",
            extra={"delivery_id": str(d.id), "jurisdiction": d.jurisdiction},
        )
