"""Retention of delivery payloads: ciphertexts go a set time after acknowledgement, in bounded
batches, each with a signed deletion record; metadata stays and the audit chain verifies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.audit import service as audit
from services.registry.deliveries.models import Delivery
from services.registry.evidence.models import EvidenceRecord
from services.registry.store import retention
from shared.db import transaction
from tests.integration.api.conftest import TOPIC_PREFIX
from tests.integration.api.evidence_scene import deliver
from tests.tokens import TokenMint, bearer

pytestmark = pytest.mark.integration

RETENTION = timedelta(days=90)


async def test_retention_deletes_exactly_the_payloads_past_their_time_in_bounded_batches(
    intake: httpx.AsyncClient, mint: TokenMint, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now(UTC)
    ages: dict[uuid.UUID, timedelta | None] = {}
    for expired, kept in ((100, 89), (91, 30), (365, None)):
        scene = await deliver(intake, mint, sessionmaker)
        for code, days in (("FR", expired), ("DE", kept)):
            ident = scene.deliveries[code]
            ages[ident] = None if days is None else timedelta(days=days)
            if days is not None:
                ok = await intake.post(
                    f"/v1/inbox/{ident}/ack", headers=bearer(mint.authority(code))
                )
                assert ok.status_code == 200
    async with transaction(sessionmaker) as session:  # the clock: acknowledged long ago
        for ident, age in ages.items():
            if age is not None:
                await session.execute(
                    update(Delivery).where(Delivery.id == ident).values(acknowledged_at=now - age)
                )
    due = {ident for ident, age in ages.items() if age is not None and age > RETENTION}
    assert len(due) == 3

    counts = []
    while True:
        async with transaction(sessionmaker) as session:
            done = await retention.prune(
                session,
                outbox_before=now - timedelta(days=3650),
                keys_before=now - timedelta(days=3650),
                payloads_before=now - RETENTION,
                prefix=TOPIC_PREFIX,
                batch=2,
            )
        counts.append(done.payloads)
        if not done.full(2):
            break
    assert counts == [2, 1]

    async with transaction(sessionmaker) as session:
        rows = (await session.scalars(select(Delivery).where(Delivery.id.in_(list(ages))))).all()
        assert {d.id for d in rows} == set(ages)  # metadata stays
        assert {d.id for d in rows if d.sealed_disclosures is None} == due
        assert all(d.state in ("acknowledged", "published") for d in rows)
        deleted = (
            await session.scalars(
                select(EvidenceRecord.delivery_id).where(
                    EvidenceRecord.kind == "delivery.payload-deleted",
                    EvidenceRecord.delivery_id.in_(list(ages)),
                )
            )
        ).all()
        assert sorted(map(str, deleted)) == sorted(map(str, due))
        assert (await audit.verify(session)).ok
