"""The router's fan-out against the real database and broker: the seed scenario of the
registry issue, exactly-once by id on replay, and sealing per recipient."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from caseshare.stack.embedded import EmbeddedTansu
from services.registry.cases import coordination
from services.registry.cases import service as cases
from services.registry.cases.rules import CoordinationDecision
from services.registry.context import Actor, Context
from services.registry.deliveries.models import Delivery, Exclusion
from services.registry.evidence import keys as hub_keys
from services.registry.reference.models import Jurisdiction
from services.registry.responses import service as responses
from services.registry.responses.models import CooperationResponse
from services.router import fanout, publish
from shared import sealing
from shared.db import transaction
from shared.events import topic_name
from shared.kafka import decode
from tests import factories
from tests.kafka_utils import read_topic

pytestmark = pytest.mark.integration
POLICY = publish.Policy(timedelta(seconds=60), timedelta(seconds=600))


async def _codes(sm: async_sessionmaker[AsyncSession]) -> set[str]:
    async with transaction(sm) as s:
        return set((await s.scalars(select(Jurisdiction.code))).all())


def actor(code: str) -> Actor:
    return Actor(client_id=f"authority-{code.lower()}", jurisdiction=code)


@pytest.fixture
async def suspended_member(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[str]:
    """LU opens a case, is then suspended by the scenario, and is restored after the test."""
    yield "LU"
    async with transaction(sessionmaker) as session:
        await session.execute(
            update(Jurisdiction).where(Jurisdiction.code == "LU").values(status="member")
        )


async def _seed_scenario(sm: async_sessionmaker[AsyncSession], ctx: Context, lu: str) -> dict:
    group = factories.selector()
    async with transaction(sm) as s:
        fr = await cases.register(
            s, actor=actor("FR"), data=factories.case(selectors=[group]), ctx=ctx
        )
        others = {}
        for code in ("DE", "BE"):
            others[code] = await cases.register(
                s, actor=actor(code), data=factories.case(selectors=[group]), ctx=ctx
            )
        kr = await cases.register(
            s,
            actor=actor("KR"),
            ctx=ctx,
            data=factories.case(selectors=[group], coordinating_jurisdiction="FR"),
        )
        await coordination.answer(
            s,
            actor=actor("FR"),
            case_id=kr.id,
            decision=CoordinationDecision.ACCEPT,
            reason=None,
            ctx=ctx,
        )
        lu_case = await cases.register(
            s, actor=actor(lu), data=factories.case(selectors=[group]), ctx=ctx
        )
    async with transaction(sm) as s:
        await s.execute(
            update(Jurisdiction).where(Jurisdiction.code == lu).values(status="suspended")
        )
        accepted = await responses.submit(
            s,
            platform="telegram",
            client_id="platform-telegram",
            ctx=ctx,
            data=factories.response(case_ids=[fr.id], selectors=[group]),
        )
    return {"response_id": accepted.id, "fr": fr, "kr": kr, "lu": lu_case, **others}


async def test_seed_scenario_reaches_exactly_those_with_standing(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    kafka: tuple,
    broker: EmbeddedTansu,
    keys_dir: Path,
    suspended_member: str,
) -> None:
    producer, provisioner = kafka
    seeded = await _seed_scenario(sessionmaker, ctx, suspended_member)
    rid: uuid.UUID = seeded["response_id"]

    produced = await fanout.process_response(
        sessionmaker, producer, provisioner, response_id=rid, prefix=ctx.topic_prefix, policy=POLICY
    )
    assert produced.produced == 4
    assert produced.excluded == len(await _codes(sessionmaker)) - 4

    async with transaction(sessionmaker) as s:
        deliveries = (await s.scalars(select(Delivery).where(Delivery.response_id == rid))).all()
        exclusions = {
            e.jurisdiction: e
            for e in (await s.scalars(select(Exclusion).where(Exclusion.response_id == rid))).all()
        }
        resp = await s.get(CooperationResponse, rid)
        all_codes = set((await s.scalars(select(Jurisdiction.code))).all())
        hub_jwks = await hub_keys.jwks(s)
    assert sorted(d.jurisdiction for d in deliveries) == ["BE", "DE", "FR", "KR"]
    assert all(d.state == "published" for d in deliveries)
    assert exclusions["US"].reason == "no_open_case"
    assert exclusions[suspended_member].reason == "suspended"
    assert set(exclusions) | {d.jurisdiction for d in deliveries} == all_codes
    assert resp is not None
    assert resp.disclosures is None
    assert resp.fanout_state == "completed"

    for code in sorted(all_codes):
        records = await read_topic(
            broker.bootstrap, topic_name(ctx.topic_prefix, "inbox", code), settle=0.2
        )
        delivered = [
            r
            for r in records
            if decode(r.value, r.headers).ce_type.endswith("response.delivered.v1")
        ]
        expected = 1 if code in {"FR", "DE", "BE", "KR"} else 0
        assert len(delivered) == expected, code
        for record in delivered:
            envelope = decode(record.value, record.headers)
            assert envelope.ce_id == str(fanout.delivery_id(rid, code))
            sealed = envelope.event.sealed_disclosures  # type: ignore[attr-defined]
            private = json.loads((keys_dir / f"{code}.private.jwk.json").read_text())
            opened = sealing.open_verified(
                sealed, private, hub_jwks, delivery_id=envelope.ce_id
            ).disclosures
            assert opened[0]["records"][0]["value"] == "203.0.113.7"
            wrong = json.loads((keys_dir / "US.private.jwk.json").read_text())
            with pytest.raises(sealing.SealError):
                sealing.unseal(sealed, wrong)


async def test_replay_is_idempotent_by_delivery_id(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    kafka: tuple,
    broker: EmbeddedTansu,
) -> None:
    producer, provisioner = kafka
    async with transaction(sessionmaker) as s:
        sel = factories.selector()
        fr = await cases.register(
            s, actor=actor("FR"), data=factories.case(selectors=[sel]), ctx=ctx
        )
        accepted = await responses.submit(
            s,
            platform="telegram",
            client_id="platform-telegram",
            ctx=ctx,
            data=factories.response(case_ids=[fr.id], disclosures=[factories.disclosure(sel)]),
        )
    for _ in range(3):
        await fanout.process_response(
            sessionmaker,
            producer,
            provisioner,
            response_id=accepted.id,
            prefix=ctx.topic_prefix,
            policy=POLICY,
        )
    async with transaction(sessionmaker) as s:
        deliveries = (
            await s.scalars(select(Delivery).where(Delivery.response_id == accepted.id))
        ).all()
    assert [(d.jurisdiction, d.attempts) for d in deliveries] == [("FR", 1)]
    records = await read_topic(
        broker.bootstrap, topic_name(ctx.topic_prefix, "inbox", "FR"), settle=0.2
    )
    ids = {
        decode(r.value, r.headers).ce_id
        for r in records
        if r.headers and dict(r.headers)["ce_type"].endswith(b"response.delivered.v1")
    }
    assert ids == {str(deliveries[0].id)}
