"""A fan-out batch costs a fixed number of statements, however many responses it holds: each
kind of read and write runs once for the batch, not once per response."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.registry.cases import service as cases
from services.registry.context import Actor, Context
from services.registry.responses import service as responses
from services.router import fanout, publish
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
def counting(engine: AsyncEngine) -> Iterator[Counter[str]]:
    """Each statement the engine runs, by its first line."""
    seen: Counter[str] = Counter()

    def count(*args: Any) -> None:
        seen[args[2].split("\n", 1)[0]] += 1

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
