"""Retention forgets only what it may: published outbox events past retention and expired
idempotency keys, in bounded batches; unpublished events and recent rows stay."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.store import retention
from services.registry.store.models import IdempotencyKey, OutboxEvent
from services.router.settings import RouterSettings

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
OLD, RECENT = NOW - timedelta(days=30), NOW - timedelta(minutes=5)


def event(marker: str, *, created: datetime, published: datetime | None) -> OutboxEvent:
    return OutboxEvent(
        event_id=uuid.uuid4(),
        topic="retention.test",
        key=marker,
        event_type="eu.caseshare.case.registered.v1",
        subject=None,
        payload={},
        created_at=created,
        published_at=published,
    )


def key(client: str, created: datetime) -> IdempotencyKey:
    return IdempotencyKey(
        client_id=client,
        key=uuid.uuid4().hex,
        method="POST",
        path="/v1/cases",
        request_hash="0" * 64,
        status_code=201,
        response_body={},
        created_at=created,
    )


async def left(session: AsyncSession, marker: str) -> tuple[int, int]:
    events = await session.scalar(
        select(func.count()).select_from(OutboxEvent).where(OutboxEvent.key == marker)
    )
    keys = await session.scalar(
        select(func.count()).select_from(IdempotencyKey).where(IdempotencyKey.client_id == marker)
    )
    return events or 0, keys or 0


async def test_only_published_events_and_keys_past_retention_are_deleted(
    session: AsyncSession,
) -> None:
    marker = f"retention-{uuid.uuid4()}"
    session.add_all(
        [
            event(marker, created=OLD, published=OLD),  # goes
            event(marker, created=OLD, published=None),  # never published: stays
            event(marker, created=RECENT, published=RECENT),  # within retention: stays
            key(marker, OLD),  # goes
            key(marker, RECENT),  # stays
        ]
    )
    await session.flush()
    cutoff = NOW - timedelta(days=7)
    pruned = await retention.prune(session, outbox_before=cutoff, keys_before=cutoff)
    assert (pruned.outbox, pruned.keys) >= (1, 1)
    assert await left(session, marker) == (2, 1)
    kept = (await session.scalars(select(OutboxEvent).where(OutboxEvent.key == marker))).all()
    assert sorted(str(e.published_at is None) for e in kept) == ["False", "True"]


async def test_a_pass_deletes_in_bounded_batches(session: AsyncSession) -> None:
    marker = f"batches-{uuid.uuid4()}"
    session.add_all([event(marker, created=OLD, published=OLD) for _ in range(5)])
    session.add_all([key(marker, OLD) for _ in range(5)])
    await session.flush()
    cutoff = NOW - timedelta(days=7)
    counts = []
    while True:
        done = await retention.prune(session, outbox_before=cutoff, keys_before=cutoff, batch=2)
        counts.append((done.outbox, done.keys))
        if max(done.outbox, done.keys) < 2:
            break
    assert all(o <= 2 and k <= 2 for o, k in counts)
    assert await left(session, marker) == (0, 0)


def test_retention_shorter_than_the_replay_window_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least ROUTER_REPLAY_WINDOW_SECONDS"):
        RouterSettings(OUTBOX_RETENTION_SECONDS=60, ROUTER_REPLAY_WINDOW_SECONDS=3600)
