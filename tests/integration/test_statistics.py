"""The statistics endpoint over committed data: per-day counts, acknowledgement times, states.

Each test makes its own platform and filters on it, so data other tests commit never shows.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.registry.cases.schemas import SelectorIn
from services.registry.context import Actor, Context
from services.registry.deliveries import service as inbox
from services.registry.oversight import statistics
from services.registry.requests import service as requests
from services.registry.requests.rules import RequestType
from services.registry.responses import service as responses
from services.router import fanout, publish
from shared.db import transaction
from tests import factories
from tests.integration.test_coordinator import DISCLOSED, new_platform, register
from tests.registry_api import COORDINATOR, Registry, running, settings_for

pytestmark = pytest.mark.integration

FR = Actor(client_id="authority-fr", jurisdiction="FR")
DE = Actor(client_id="authority-de", jurisdiction="DE")
PATH = "/v1/registry/statistics"


@pytest.fixture
async def registry(
    database_url: str, topic_prefix: str, engine: AsyncEngine
) -> AsyncIterator[Registry]:
    async with running(settings_for(database_url, topic_prefix)) as reg:
        yield reg


async def routed_response(sm: async_sessionmaker[AsyncSession], ctx: Context, slug: str) -> None:
    """FR and DE share a selector on `slug`; both deliveries are published and FR acknowledges."""
    shared = factories.selector()
    await register(sm, ctx, FR, platform=slug, selectors=[shared])
    await register(sm, ctx, DE, platform=slug, selectors=[shared])
    async with transaction(sm) as session:
        sent = await responses.submit(
            session,
            platform=slug,
            client_id="platform-x",
            data=factories.response(selectors=[shared]),
            ctx=ctx,
        )
    async with transaction(sm) as session:
        await fanout.decide_and_record(session, response_id=sent.id, prefix=ctx.topic_prefix)
    policy = publish.Policy(timedelta(minutes=5), timedelta(hours=1))
    ids = [fanout.delivery_id(sent.id, code) for code in ("FR", "DE")]
    async with transaction(sm) as session:
        records = await publish.load_outgoing(session, prefix=ctx.topic_prefix, delivery_ids=ids)
        await publish.mark_published(
            session, records=records, policy=policy, prefix=ctx.topic_prefix
        )
    async with transaction(sm) as session:
        await inbox.acknowledge(session, actor=FR, delivery_id=ids[0], ctx=ctx)


async def test_statistics_count_responses_time_acknowledgements_and_states(
    registry: Registry, sessionmaker: async_sessionmaker[AsyncSession], ctx: Context
) -> None:
    slug = await new_platform(sessionmaker)
    await routed_response(sessionmaker, ctx, slug)
    auth = registry.issuer.auth(COORDINATOR)
    answer = await registry.client.get(PATH, params={"platform": slug, "days": 7}, headers=auth)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["days"], body["platform"]) == (7, slug)
    assert len(body["per_day"]) == 7
    assert body["per_day"][-1]["day"] == datetime.now(UTC).date().isoformat()
    assert [d["responses"] for d in body["per_day"]] == [0] * 6 + [1]
    assert all(d["requests"] == 0 for d in body["per_day"])
    assert body["requests_recorded"] is True
    [latency] = body["acknowledgement_latency"]
    assert (latency["jurisdiction"], latency["acknowledged"]) == ("FR", 1)
    assert 0 <= latency["p50_seconds"] <= latency["p95_seconds"] < 60
    states = {s["state"]: s["deliveries"] for s in body["deliveries_by_state"]}
    assert states["published"] == 1
    assert states["acknowledged"] == 1
    assert sum(states.values()) == 2
    assert body["deadline_compliance"] == []
    assert body["held_awaiting_release"] == 0
    assert not [value for value in DISCLOSED if value in answer.text]


async def test_the_window_ends_today_and_older_responses_fall_out(
    registry: Registry, sessionmaker: async_sessionmaker[AsyncSession], ctx: Context
) -> None:
    slug = await new_platform(sessionmaker)
    await routed_response(sessionmaker, ctx, slug)
    later = datetime.now(UTC) + timedelta(days=3)
    async with transaction(sessionmaker) as session:
        shifted = await statistics.statistics(session, days=2, platform=slug, now=later)
    assert [d.day for d in shifted.per_day] == [
        (later - timedelta(days=1)).date(),
        later.date(),
    ]
    assert sum(d.responses for d in shifted.per_day) == 0
    assert shifted.acknowledgement_latency == []
    first = later.date() - timedelta(days=1)
    assert shifted.since == datetime(first.year, first.month, first.day, tzinfo=UTC)


async def test_statistics_need_fanout_read_refuse_bad_windows_and_are_documented(
    registry: Registry,
) -> None:
    client = registry.client
    assert (await client.get(PATH)).status_code == 401
    wrong_scope = await client.get(PATH, headers=registry.issuer.auth("cases:read"))
    assert wrong_scope.status_code == 403
    for params in ({"days": 0}, {"days": 367}, {"platform": "Not A Slug"}):
        bad = await client.get(PATH, params=params, headers=registry.issuer.auth(COORDINATOR))
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
    openapi = (await client.get("/openapi.json")).json()
    operation = openapi["paths"][PATH]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Statistics"}
    assert "held_awaiting_release" in openapi["components"]["schemas"]["Statistics"]["properties"]


async def issued(
    sm: async_sessionmaker[AsyncSession],
    ctx: Context,
    slug: str,
    kind: RequestType,
    *,
    ago: timedelta,
) -> tuple[uuid.UUID, SelectorIn]:
    """FR orders `slug` on a case of its own, as if received `ago` (its deadline runs from then)."""
    sel = factories.selector()
    case = await register(sm, ctx, FR, platform=slug, selectors=[sel])
    async with transaction(sm) as session:
        order = await requests.issue(
            session,
            actor=FR,
            data=factories.legal_request(case.id, sel, kind, platform=slug),
            ctx=ctx,
            now=datetime.now(UTC) - ago,
        )
    return order.id, sel


async def answer(
    sm: async_sessionmaker[AsyncSession], ctx: Context, slug: str, order: uuid.UUID, sel: SelectorIn
) -> None:
    """The platform answers the order now."""
    data = factories.response(
        selectors=[sel], request_id=order, disclosures=[factories.disclosure(sel)]
    )
    async with transaction(sm) as session:
        await responses.submit(session, platform=slug, client_id="platform-x", data=data, ctx=ctx)


async def test_deadline_compliance_counts_answers_on_time_late_and_overdue_per_type(
    registry: Registry, sessionmaker: async_sessionmaker[AsyncSession], ctx: Context
) -> None:
    slug = await new_platform(sessionmaker)
    production, emergency = RequestType.PRODUCTION, RequestType.EMERGENCY_PRODUCTION
    # a production has 10 days, an emergency production 8 hours
    prompt = await issued(sessionmaker, ctx, slug, production, ago=timedelta(days=1))
    slow = await issued(sessionmaker, ctx, slug, production, ago=timedelta(days=11))
    await issued(sessionmaker, ctx, slug, production, ago=timedelta(days=12))  # never answered
    await issued(sessionmaker, ctx, slug, production, ago=timedelta(days=2))  # open, in time
    rushed = await issued(sessionmaker, ctx, slug, emergency, ago=timedelta(hours=9))
    await issued(sessionmaker, ctx, slug, RequestType.PRESERVATION, ago=timedelta(days=90))
    for order, sel in (prompt, slow, rushed):
        await answer(sessionmaker, ctx, slug, order, sel)

    auth = registry.issuer.auth(COORDINATOR)
    got = await registry.client.get(PATH, params={"platform": slug, "days": 7}, headers=auth)
    assert got.status_code == 200, got.text
    body = got.json()
    assert sum(d["requests"] for d in body["per_day"]) == 3  # the others came before the window
    compliance = {row["request_type"]: row for row in body["deadline_compliance"]}
    assert compliance == {  # a preservation has no answer deadline: never late
        "emergency_production": {
            "platform": slug,
            "request_type": "emergency_production",
            "on_time": 0,
            "late": 1,
            "open_overdue": 0,
        },
        "production": {
            "platform": slug,
            "request_type": "production",
            "on_time": 1,
            "late": 1,
            "open_overdue": 1,
        },
    }
    async with transaction(sessionmaker) as session:
        later = await statistics.statistics(
            session, days=1, platform=slug, now=datetime.now(UTC) + timedelta(days=9)
        )
    [row] = [r for r in later.deadline_compliance if r.request_type == "production"]
    # the answers fell out of the window; the open one in time then is overdue too
    assert (row.on_time, row.late, row.open_overdue) == (0, 0, 2)
