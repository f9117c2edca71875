"""Reads are limited per client, and their access-audit entries are written in batches.

Issue 15: 100 GETs for made-up ids added 100 audit rows in 0.3 s. Now a client's reads spend
a bucket of their own (429 once it is empty, and then no entry is written), and concurrent
reads share one transaction for their entries while each still waits for its own to commit.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.intake.app import create_app as create_intake
from services.registry.app import create_app as create_registry
from services.registry.audit import service as audit
from services.registry.audit.models import AuditEntry
from shared.db import transaction
from shared.state import ServiceState, state_of
from tests.integration.api.conftest import asgi_client, intake_settings, registry_settings
from tests.tokens import TokenMint, bearer

pytestmark = pytest.mark.integration

TIGHT_READS = {"READ_RATE_PER_SECOND": 0.001, "READ_RATE_BURST": 3}


@pytest.fixture
async def tight_intake(
    database_url: str, engine: AsyncEngine, mint: TokenMint
) -> AsyncIterator[httpx.AsyncClient]:
    async with mint.http() as http:
        app = create_intake(intake_settings(database_url, **TIGHT_READS), http=http)
        async with app.router.lifespan_context(app), asgi_client(app, "http://i.test") as client:
            yield client


@pytest.fixture
async def tight_registry(
    database_url: str, engine: AsyncEngine, mint: TokenMint
) -> AsyncIterator[httpx.AsyncClient]:
    async with mint.http() as http:
        app: FastAPI = create_registry(registry_settings(database_url, **TIGHT_READS), http=http)
        async with app.router.lifespan_context(app), asgi_client(app, "http://r.test") as client:
            yield client


async def entries_under(sm: async_sessionmaker[AsyncSession], jti: str) -> int:
    async with transaction(sm) as session:
        await audit.drain(session)
        count = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.details["token_id"].astext == jti)
        )
    return int(count or 0)


def assert_limited(answer: httpx.Response) -> None:
    assert answer.status_code == 429
    assert answer.headers["content-type"] == "application/problem+json"
    assert int(answer.headers["retry-after"]) >= 1


async def test_made_up_reads_are_limited_and_stop_adding_audit_rows(
    tight_intake: httpx.AsyncClient,
    mint: TokenMint,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    token = mint.authority("FR")
    statuses = [
        (await tight_intake.get(f"/v1/cases/{uuid.uuid4()}", headers=bearer(token))).status_code
        for _ in range(20)
    ]
    assert statuses[:3] == [404] * 3
    assert set(statuses[3:]) == {429}
    assert_limited(await tight_intake.get("/v1/cases", headers=bearer(token)))
    assert await entries_under(sessionmaker, mint.jti(token)) == 3
    # The bucket is the client's: another authority still reads.
    de = bearer(mint.authority("DE"))
    assert (await tight_intake.get("/v1/cases", headers=de)).status_code == 200


async def test_registry_reads_are_limited_per_client(
    tight_registry: httpx.AsyncClient, mint: TokenMint
) -> None:
    coordinator = bearer(mint.coordinator())
    for _ in range(3):
        answer = await tight_registry.get("/v1/registry/responses", headers=coordinator)
        assert answer.status_code == 200
    assert_limited(await tight_registry.get("/v1/registry/responses", headers=coordinator))
    admin = bearer(mint.admin())
    assert (await tight_registry.get("/v1/registry/platforms", headers=admin)).status_code == 200


async def test_concurrent_reads_share_audit_transactions_and_each_is_recorded(
    intake: httpx.AsyncClient,
    intake_app: FastAPI,
    mint: TokenMint,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    token = mint.authority("FR")
    inserts: list[int] = []

    def count_queue_inserts(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO AUDIT_QUEUE"):
            inserts.append(1)

    app_engine: AsyncEngine = state_of(intake_app, ServiceState).sessionmaker.kw["bind"]
    event.listen(app_engine.sync_engine, "before_cursor_execute", count_queue_inserts)
    try:
        answers = await asyncio.gather(
            *(intake.get(f"/v1/cases/{uuid.uuid4()}", headers=bearer(token)) for _ in range(40))
        )
    finally:
        event.remove(app_engine.sync_engine, "before_cursor_execute", count_queue_inserts)
    assert {answer.status_code for answer in answers} == {404}
    assert await entries_under(sessionmaker, mint.jti(token)) == 40
    assert 1 <= len(inserts) < 40
