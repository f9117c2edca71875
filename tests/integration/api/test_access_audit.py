"""Every authenticated access to case data lands in the audit log with client_id and jti.

Reads get one `access.read` entry per request; writes carry the jti on the entry the use case
writes in its own transaction.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.audit import service as audit
from services.registry.audit.models import AuditEntry
from services.registry.cases import service as cases
from services.registry.context import Actor, Context
from shared.db import transaction
from tests import factories
from tests.conftest import HMAC_KEY
from tests.integration.api.conftest import World, build_world
from tests.tokens import TokenMint, bearer

pytestmark = pytest.mark.integration
FR = Actor(client_id="authority-fr", jurisdiction="FR")


async def _entries_of(sm: async_sessionmaker[AsyncSession], jti: str) -> list[AuditEntry]:
    async with transaction(sm) as session:
        await audit.drain(session)
        rows = await session.scalars(
            select(AuditEntry)
            .where(AuditEntry.details["token_id"].astext == jti)
            .order_by(AuditEntry.seq)
        )
        return list(rows.all())


def _summary(entry: AuditEntry) -> tuple[str, str, str, str]:
    return (entry.actor, entry.action, entry.subject_type, entry.subject_id)


@pytest.mark.parametrize(
    ("path", "subject"),
    [
        ("/v1/cases/{fr_case}", ("case", "{fr_case}")),
        ("/v1/cases/{de_case}", ("case", "{de_case}")),  # a refused attempt is recorded too
        ("/v1/cases", ("route", "GET /v1/cases")),
        ("/v1/inbox/{fr_delivery}", ("delivery", "{fr_delivery}")),
        ("/v1/inbox", ("route", "GET /v1/inbox")),
    ],
)
async def test_an_authority_read_writes_one_entry(
    intake: httpx.AsyncClient,
    mint: TokenMint,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    path: str,
    subject: tuple[str, str],
) -> None:
    names = _names(world)
    token = mint.authority("FR")
    await intake.get(path.format(**names), headers=bearer(token))
    entries = await _entries_of(sessionmaker, mint.jti(token))
    expected = ("authority-fr", "access.read", subject[0], subject[1].format(**names))
    assert [_summary(e) for e in entries] == [expected]


@pytest.mark.parametrize(
    ("path", "subject"),
    [
        ("/v1/registry/cases/{de_case}", ("case", "{de_case}")),
        ("/v1/registry/responses/{response}/fanout", ("response", "{response}")),
        ("/v1/registry/case-map", ("route", "GET /v1/registry/case-map")),
        ("/v1/registry/responses", ("route", "GET /v1/registry/responses")),
    ],
)
async def test_a_coordinator_view_writes_one_entry(
    registry: httpx.AsyncClient,
    mint: TokenMint,
    world: World,
    sessionmaker: async_sessionmaker[AsyncSession],
    path: str,
    subject: tuple[str, str],
) -> None:
    names = _names(world)
    token = mint.coordinator()
    answer = await registry.get(path.format(**names), headers=bearer(token))
    assert answer.status_code == 200
    entries = await _entries_of(sessionmaker, mint.jti(token))
    expected = ("coordinator", "access.read", subject[0], subject[1].format(**names))
    assert [_summary(e) for e in entries] == [expected]


async def test_a_write_carries_the_jti_on_its_own_audit_entry(
    intake: httpx.AsyncClient, mint: TokenMint, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    token = mint.authority("FR")
    body = factories.case().model_dump(mode="json")
    created = await intake.post("/v1/cases", headers=bearer(token), json=body)
    assert created.status_code == 201
    entries = await _entries_of(sessionmaker, mint.jti(token))
    assert [_summary(e) for e in entries] == [
        ("authority-fr", "case.registered", "case", created.json()["id"])
    ]
    # The binding ends with the request: later work in this task is not attributed to it.
    ctx = Context(hmac_key=HMAC_KEY.encode(), topic_prefix="tapisecurity")
    async with transaction(sessionmaker) as session:
        later = await cases.register(session, actor=FR, data=factories.case(), ctx=ctx)
        await audit.drain(session)
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.subject_id == str(later.id))
        )
    assert entry is not None
    assert "token_id" not in entry.details


async def test_an_acknowledgement_carries_the_jti(
    intake: httpx.AsyncClient, mint: TokenMint, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    fresh = await build_world(sessionmaker)
    token = mint.authority("DE")
    delivery = fresh.deliveries["DE"]
    acked = await intake.post(f"/v1/inbox/{delivery}/ack", headers=bearer(token))
    assert acked.status_code == 200
    entries = await _entries_of(sessionmaker, mint.jti(token))
    assert [_summary(e) for e in entries] == [
        ("authority-de", "delivery.acknowledged", "delivery", str(delivery))
    ]


async def test_an_unauthenticated_request_writes_nothing(
    intake: httpx.AsyncClient, world: World, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with transaction(sessionmaker) as session:
        await audit.drain(session)
        before = await session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()))
    answer = await intake.get(f"/v1/cases/{world.cases['FR']}")
    assert answer.status_code == 401
    async with transaction(sessionmaker) as session:
        await audit.drain(session)
        after = await session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()))
    assert after == before


def _names(world: World) -> dict[str, Any]:
    return {
        "fr_case": world.cases["FR"],
        "de_case": world.cases["DE"],
        "fr_delivery": world.deliveries["FR"],
        "response": world.response_id,
    }
