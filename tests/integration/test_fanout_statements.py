"""A fan-out batch costs a fixed number of statements, however many responses it holds: each
kind of read and write runs once for the batch, not once per response; and what every batch
reads alike (jurisdictions, platforms, the hub's key) is read again only when it changed."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.registry.cases import service as cases
from services.registry.context import Actor, Context
from services.registry.deliveries.models import Delivery
from services.registry.evidence import keys as hub_keys
from services.registry.evidence.models import EvidenceRecord
from services.registry.reference.models import Jurisdiction
from services.registry.responses import service as responses
from services.router import fanout, publish
from shared import evidence as signing
from shared import sealing
from shared.db import transaction
from tests import factories
from tests.kafka_utils import Kafka

pytestmark = pytest.mark.integration
POLICY = publish.Policy(timedelta(seconds=60), timedelta(seconds=600))


def actor(code: str) -> Actor:
    return Actor(client_id=f"authority-{code.lower()}", jurisdiction=code)


async def _responses(sm: async_sessionmaker[AsyncSession], ctx: Context, n: int) -> list[uuid.UUID]:
    """`n` responses, each about a selector of its own that FR and DE opened cases on, asked
    for by FR's case, with a disclosure about that selector (so minimisation reads it)."""
    ids = []
    async with transaction(sm) as s:
        for _ in range(n):
            sel = factories.selector()
            fr = await cases.register(
                s, actor=actor("FR"), data=factories.case(selectors=[sel]), ctx=ctx
            )
            await cases.register(
                s, actor=actor("DE"), data=factories.case(selectors=[sel]), ctx=ctx
            )
            accepted = await responses.submit(
                s,
                platform="telegram",
                client_id="platform-telegram",
                ctx=ctx,
                data=factories.response(
                    selectors=[sel],
                    disclosures=[factories.disclosure(sel)],
                    requesting_case_id=fr.id,
                ),
            )
            ids.append(accepted.id)
    return ids


@contextmanager
def counting(engine: AsyncEngine, *, whole: bool = False) -> Iterator[Counter[str]]:
    """Each statement the engine runs, by its first line (or, `whole`, its whole text)."""
    seen: Counter[str] = Counter()

    def count(*args: Any) -> None:
        seen[args[2] if whole else args[2].split("\n", 1)[0]] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def _fan_out(
    sm: async_sessionmaker[AsyncSession], kafka: Kafka, ctx: Context, ids: list[uuid.UUID]
) -> fanout.FanoutResult:
    producer, provisioner = kafka
    return await fanout.process_responses(
        sm, producer, provisioner, response_ids=ids, prefix=ctx.topic_prefix, policy=POLICY
    )


async def test_a_batch_runs_each_statement_once_however_many_responses(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    kafka: Kafka,
) -> None:
    one, four = await _responses(sessionmaker, ctx, 1), await _responses(sessionmaker, ctx, 4)
    await _fan_out(sessionmaker, kafka, ctx, await _responses(sessionmaker, ctx, 1))  # warm
    with counting(engine) as alone:
        await _fan_out(sessionmaker, kafka, ctx, one)
    with counting(engine) as together:
        result = await _fan_out(sessionmaker, kafka, ctx, four)
    assert (result.sealed, result.produced) == (4 * 2, 4)  # DE's wait for FR's release
    assert together == alone
    assert _reads_of(together, "case_selectors") == []  # minimisation's come with the cases


async def test_a_batch_writes_with_one_statement_a_transaction_and_one_text_for_any_size(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    kafka: Kafka,
) -> None:
    """Seven statements a batch (sixteen before the writes of each transaction went as one
    statement): the lock, the candidates, the requesting cases, the decisions' rows with the
    responses routed; the responses completed (before their deliveries are locked, the order a
    recall takes), the deliveries locked, then marked published with the publication's rows.
    The same texts for one response as for four, so no prepared statement per size."""
    one, four = await _responses(sessionmaker, ctx, 1), await _responses(sessionmaker, ctx, 4)
    await _fan_out(sessionmaker, kafka, ctx, await _responses(sessionmaker, ctx, 1))  # warm
    with counting(engine, whole=True) as alone:
        await _fan_out(sessionmaker, kafka, ctx, one)
    with counting(engine, whole=True) as together:
        await _fan_out(sessionmaker, kafka, ctx, four)
    assert together == alone
    assert sum(together.values()) == 7
    writes = {t: n for t, n in together.items() if "INSERT INTO" in t}
    assert list(writes.values()) == [1, 1]  # the decisions' rows, the publication's
    assert all(t.count("INSERT INTO") >= 3 for t in writes)


def _reads_of(seen: Counter[str], *tables: str) -> list[str]:
    return [s for s in seen if any(s.startswith(f"SELECT {t}.") for t in tables)]


async def test_a_batch_reads_the_lookups_only_when_they_changed(
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    kafka: Kafka,
) -> None:
    first, second, third = [await _responses(sessionmaker, ctx, 1) for _ in range(3)]
    await _fan_out(sessionmaker, kafka, ctx, first)
    with counting(engine) as unchanged:
        await _fan_out(sessionmaker, kafka, ctx, second)
    assert _reads_of(unchanged, "jurisdictions", "platforms", "hub_signing_keys") == []
    try:
        async with transaction(sessionmaker) as s:
            await s.execute(
                update(Jurisdiction).where(Jurisdiction.code == "DE").values(status="suspended")
            )
        with counting(engine) as changed:
            result = await _fan_out(sessionmaker, kafka, ctx, third)
    finally:
        async with transaction(sessionmaker) as s:
            await s.execute(
                update(Jurisdiction).where(Jurisdiction.code == "DE").values(status="member")
            )
    assert _reads_of(changed, "jurisdictions", "platforms")
    assert result.sealed == 1  # FR alone: DE is suspended from this batch on


async def test_a_rotated_hub_key_signs_from_the_next_batch_on(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    kafka: Kafka,
    keys_dir: Path,
) -> None:
    before, after = await _responses(sessionmaker, ctx, 1), await _responses(sessionmaker, ctx, 1)
    await _fan_out(sessionmaker, kafka, ctx, before)  # the router now holds the active key
    async with transaction(sessionmaker) as s:
        new_kid = await hub_keys.rotate(s)
    await _fan_out(sessionmaker, kafka, ctx, after)
    async with transaction(sessionmaker) as s:
        delivery = await s.scalar(
            select(Delivery).where(Delivery.response_id == after[0], Delivery.jurisdiction == "FR")
        )
        assert delivery is not None
        assert delivery.sealed_disclosures is not None
        evidence_kids = (
            await s.scalars(
                select(EvidenceRecord.kid).where(EvidenceRecord.delivery_id == delivery.id)
            )
        ).all()
    private = json.loads((keys_dir / "FR.private.jwk.json").read_text())
    hub_signed = sealing.unseal(delivery.sealed_disclosures, private)
    assert json.loads(signing._unb64(hub_signed.split(".")[0]))["kid"] == new_kid
    assert evidence_kids == [new_kid]
