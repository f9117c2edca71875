"""The coordinator API over committed data: counts, metadata only, fan-out, live stream.

The app uses its own sessions, so these tests commit real data; each makes its own platform,
cases and selectors and compares only what it made.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.registry.cases import selectors
from services.registry.cases import service as cases
from services.registry.cases.models import CaseSelector
from services.registry.cases.rules import CaseStatus
from services.registry.cases.schemas import CaseOut, SelectorIn
from services.registry.cases.selectors import SelectorKind
from services.registry.context import Actor, Context
from services.registry.deliveries import service as inbox
from services.registry.deliveries.models import Delivery
from services.registry.evidence import service as evidence
from services.registry.reference.models import Jurisdiction, Platform
from services.registry.responses import service as responses
from services.registry.responses.models import CooperationResponse
from services.registry.state import RegistryState
from services.registry.store import outbox
from services.registry.store.models import OutboxEvent
from services.registry.web.stream import GAP_GRACE_SECONDS, OutboxTail
from services.router import fanout, publish
from shared.db import transaction
from shared.events import (
    ExcludedJurisdiction,
    JurisdictionExcluded,
    JurisdictionsExcluded,
    ResponseReceived,
)
from shared.state import state_of
from tests import factories
from tests.registry_api import COORDINATOR, Registry, read_events, running, serving, settings_for

pytestmark = pytest.mark.integration

FR = Actor(client_id="authority-fr", jurisdiction="FR")
DE = Actor(client_id="authority-de", jurisdiction="DE")
IT = Actor(client_id="authority-it", jurisdiction="IT")
JWE = re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]*\.[\w-]*\.[\w-]*")
PHONE = "+33 6 12 34 56 78"
DISCLOSED = ("203.0.113.7", "+33612345678", "33612345678")


@pytest.fixture
async def registry(
    database_url: str, topic_prefix: str, engine: AsyncEngine
) -> AsyncIterator[Registry]:
    """The app over the migrated, seeded database (`engine` loads the reference data)."""
    async with running(settings_for(database_url, topic_prefix)) as reg:
        yield reg


async def new_platform(sm: async_sessionmaker[AsyncSession]) -> str:
    slug = "p-" + secrets.token_hex(6)
    async with transaction(sm) as session:
        session.add(Platform(slug=slug, name=slug, legal_rep_jurisdiction="IE"))
    return slug


async def register(
    sm: async_sessionmaker[AsyncSession], ctx: Context, actor: Actor, **overrides: object
) -> CaseOut:
    async with transaction(sm) as session:
        return await cases.register(session, actor=actor, data=factories.case(**overrides), ctx=ctx)


async def outbox_head(sm: async_sessionmaker[AsyncSession]) -> int:
    async with transaction(sm) as session:
        return int(await session.scalar(select(func.coalesce(func.max(OutboxEvent.id), 0))) or 0)


@dataclass
class World:
    """Two linked cases, a closed third, a routed response and one still holding plaintext."""

    fr: CaseOut
    de: CaseOut
    it: CaseOut
    routed: uuid.UUID
    unrouted: uuid.UUID
    forbidden: list[str]


async def build_world(sm: async_sessionmaker[AsyncSession], ctx: Context) -> World:
    shared = factories.selector()
    phone = SelectorIn(kind=SelectorKind.PHONE_NUMBER, value=PHONE)
    handle = SelectorIn(kind=SelectorKind.ACCOUNT_HANDLE, value="@" + secrets.token_hex(5))
    fr = await register(sm, ctx, FR, selectors=[shared, phone, handle])
    de = await register(sm, ctx, DE, selectors=[shared])
    it = await register(sm, ctx, IT, selectors=[shared])
    async with transaction(sm) as session:
        await cases.change_status(
            session, actor=IT, case_id=it.id, status=CaseStatus.CLOSED, expected_version=1, ctx=ctx
        )
        routed = await responses.submit(
            session,
            platform="telegram",
            client_id="platform-telegram",
            data=factories.response(selectors=[shared]),
            ctx=ctx,
        )
        unrouted = await responses.submit(
            session,
            platform="telegram",
            client_id="platform-telegram",
            data=factories.response(case_ids=[fr.id], disclosures=[factories.disclosure(phone)]),
            ctx=ctx,
        )
    async with transaction(sm) as session:
        await fanout.decide_and_record(session, response_id=routed.id, prefix=ctx.topic_prefix)
    policy = publish.Policy(timedelta(minutes=5), timedelta(hours=1))
    async with transaction(sm) as session:
        records = await publish.load_outgoing(
            session,
            prefix=ctx.topic_prefix,
            delivery_ids=[fanout.delivery_id(routed.id, "DE")],
        )
        await publish.mark_published(
            session, records=records, policy=policy, prefix=ctx.topic_prefix
        )
        await inbox.acknowledge(
            session, actor=FR, delivery_id=fanout.delivery_id(routed.id, "FR"), ctx=ctx
        )
    forbidden = await _secrets(sm, [fr, de, it], [shared, phone, handle], routed.id)
    return World(fr, de, it, routed.id, unrouted.id, forbidden)


async def _secrets(
    sm: async_sessionmaker[AsyncSession],
    made: list[CaseOut],
    sels: list[SelectorIn],
    routed: uuid.UUID,
) -> list[str]:
    """Every string that would betray a selector, a disclosure or a sealed ciphertext."""
    found = [*DISCLOSED, "***"]
    found += [s.value for s in sels] + [selectors.normalise(s.kind, s.value) for s in sels]
    found += [s.masked for case in made for s in case.selectors]
    async with transaction(sm) as session:
        found += (
            await session.scalars(
                select(CaseSelector.value_hash).where(
                    CaseSelector.case_id.in_([c.id for c in made])
                )
            )
        ).all()
        sealed = await session.scalars(
            select(Delivery.sealed_disclosures).where(Delivery.response_id == routed)
        )
        found += [s for s in sealed if s]
    return found


def assert_metadata_only(body: str, forbidden: list[str]) -> None:
    leaked = [secret for secret in forbidden if secret in body]
    assert not leaked, f"coordinator body leaks {len(leaked)} protected value(s)"
    assert JWE.search(body) is None


async def test_case_map_counts_by_jurisdiction_and_platform(
    registry: Registry, sessionmaker: async_sessionmaker[AsyncSession], ctx: Context
) -> None:
    slug, other = await new_platform(sessionmaker), await new_platform(sessionmaker)
    for actor, platform in [(FR, slug), (FR, slug), (DE, slug), (FR, other)]:
        await register(sessionmaker, ctx, actor, platform=platform)
    closed = await register(sessionmaker, ctx, FR, platform=slug)
    async with transaction(sessionmaker) as session:
        await cases.change_status(
            session,
            actor=FR,
            case_id=closed.id,
            status=CaseStatus.CLOSED,
            expected_version=None,
            ctx=ctx,
        )
    auth = registry.issuer.auth(COORDINATOR)

    async def case_map(**params: str) -> Any:
        answer = await registry.client.get("/v1/registry/case-map", params=params, headers=auth)
        assert answer.status_code == 200
        return answer.json()

    assert await case_map(platform=slug) == {
        "cells": [
            {"jurisdiction": "DE", "platform": slug, "cases": 1},
            {"jurisdiction": "FR", "platform": slug, "cases": 3},
        ],
        "by_jurisdiction": {"DE": 1, "FR": 3},
        "by_platform": {slug: 3 + 1},
        "total": 4,
    }
    open_only = await case_map(platform=slug, status="open")
    assert open_only["by_jurisdiction"] == {"DE": 1, "FR": 2}
    assert (await case_map(platform=slug, opened_by="DE"))["total"] == 1
    everything = await case_map()
    assert everything["by_platform"][other] == 1
    assert everything["total"] == sum(everything["by_jurisdiction"].values())
    bad = await registry.client.get(
        "/v1/registry/case-map", params={"opened_by": "france"}, headers=auth
    )
    assert bad.status_code == 422


async def test_no_coordinator_answer_reveals_selectors_disclosures_or_ciphertexts(
    registry: Registry, sessionmaker: async_sessionmaker[AsyncSession], ctx: Context
) -> None:
    world = await build_world(sessionmaker, ctx)
    assert len(world.forbidden) > 10  # the check below would prove nothing without them
    auth = registry.issuer.auth(COORDINATOR)
    paths = [
        "/v1/registry/case-map",
        "/v1/registry/cases?limit=100",
        "/v1/registry/cases?platform=telegram&opened_by=FR",
        *(f"/v1/registry/cases/{c.id}" for c in (world.fr, world.de, world.it)),
        "/v1/registry/responses?limit=100",
        f"/v1/registry/responses/{world.routed}/fanout",
        f"/v1/registry/responses/{world.unrouted}/fanout",
    ]
    for path in paths:
        answer = await registry.client.get(path, headers=auth)
        assert answer.status_code == 200, path
        assert_metadata_only(answer.text, world.forbidden)
    # The unrouted response still holds plaintext in the database; the API must not show it.
    async with transaction(sessionmaker) as session:
        held = await session.get(CooperationResponse, world.unrouted)
        assert held is not None
        assert held.disclosures is not None


async def test_case_metadata_counts_selectors_and_names_links(
    registry: Registry, sessionmaker: async_sessionmaker[AsyncSession], ctx: Context
) -> None:
    world = await build_world(sessionmaker, ctx)
    answer = await registry.client.get(
        f"/v1/registry/cases/{world.fr.id}", headers=registry.issuer.auth(COORDINATOR)
    )
    body = answer.json()
    assert body["selector_count"] == 3
    assert "selectors" not in body
    assert "legal_basis" not in body
    assert body["reference"] == world.fr.reference
    assert sorted((link["jurisdiction"], link["case_id"]) for link in body["links"]) == sorted(
        [("DE", str(world.de.id)), ("IT", str(world.it.id))]
    )


async def test_fanout_lists_every_delivery_and_exclusion_with_its_reason(
    registry: Registry, sessionmaker: async_sessionmaker[AsyncSession], ctx: Context
) -> None:
    world = await build_world(sessionmaker, ctx)
    async with transaction(sessionmaker) as session:
        known = await session.scalar(select(func.count()).select_from(Jurisdiction))
    auth = registry.issuer.auth(COORDINATOR)
    body = (
        await registry.client.get(f"/v1/registry/responses/{world.routed}/fanout", headers=auth)
    ).json()
    assert body["response"]["fanout_state"] == "routed"
    assert body["response"]["disclosure_count"] == 1
    assert body["response"]["routed_at"] is not None
    deliveries = {d["jurisdiction"]: d for d in body["deliveries"]}
    assert sorted(deliveries) == ["DE", "FR"]
    assert deliveries["FR"]["state"] == "acknowledged"
    assert deliveries["FR"]["acknowledged_at"] is not None
    assert deliveries["FR"]["case_id"] == str(world.fr.id)
    assert (deliveries["DE"]["state"], deliveries["DE"]["attempts"]) == ("published", 1)
    assert {d["rule"] for d in deliveries.values()} == {"shared_selector"}
    exclusions = {e["jurisdiction"]: e for e in body["exclusions"]}
    assert len(exclusions) == (known or 0) - 2
    assert exclusions["IT"]["reason"] == "case_not_open"
    assert exclusions["IT"]["case_id"] == str(world.it.id)
    assert all(e["detail"].startswith(f"{code} is excluded") for code, e in exclusions.items())
    pending = (
        await registry.client.get(f"/v1/registry/responses/{world.unrouted}/fanout", headers=auth)
    ).json()
    assert pending["response"]["fanout_state"] == "received"
    assert (pending["deliveries"], pending["exclusions"]) == ([], [])


async def test_unknown_case_or_response_is_404(registry: Registry) -> None:
    auth = registry.issuer.auth(COORDINATOR)
    for path in (
        f"/v1/registry/cases/{uuid.uuid4()}",
        f"/v1/registry/responses/{uuid.uuid4()}/fanout",
    ):
        answer = await registry.client.get(path, headers=auth)
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"


async def test_lists_page_newest_first_with_a_cursor(
    registry: Registry, sessionmaker: async_sessionmaker[AsyncSession], ctx: Context
) -> None:
    slug = await new_platform(sessionmaker)
    made = [await register(sessionmaker, ctx, FR, platform=slug) for _ in range(3)]
    async with transaction(sessionmaker) as session:
        sent = [
            await responses.submit(
                session,
                platform=slug,
                client_id="platform-x",
                data=factories.response(selectors=[factories.selector()]),
                ctx=ctx,
            )
            for _ in range(3)
        ]
    auth = registry.issuer.auth(COORDINATOR)
    for path, expected in [
        ("/v1/registry/cases", [str(c.id) for c in reversed(made)]),
        ("/v1/registry/responses", [str(r.id) for r in reversed(sent)]),
    ]:
        first = (
            await registry.client.get(path, params={"platform": slug, "limit": 2}, headers=auth)
        ).json()
        assert first["next_cursor"] is not None
        params = {"platform": slug, "limit": 2, "cursor": first["next_cursor"]}
        second = (await registry.client.get(path, params=params, headers=auth)).json()
        assert second["next_cursor"] is None
        assert [i["id"] for i in first["items"] + second["items"]] == expected
        bad = await registry.client.get(path, params={"cursor": "!!"}, headers=auth)
        assert bad.status_code == 422


async def submit(sm: async_sessionmaker[AsyncSession], ctx: Context) -> uuid.UUID:
    async with transaction(sm) as session:
        accepted = await responses.submit(
            session,
            platform="telegram",
            client_id="platform-telegram",
            data=factories.response(selectors=[factories.selector()]),
            ctx=ctx,
        )
    return accepted.id


async def test_stream_sends_what_is_committed_after_connecting_and_resumes(
    registry: Registry, sessionmaker: async_sessionmaker[AsyncSession], ctx: Context
) -> None:
    auth = registry.issuer.auth(COORDINATOR)
    async with serving(registry.app) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        async with http.stream("GET", "/v1/registry/stream", headers=auth) as live:
            assert live.status_code == 200
            assert live.headers["content-type"].startswith("text/event-stream")
            first = await submit(sessionmaker, ctx)
            [event] = await read_events(live, 1)
        assert event.event == "response.received"
        assert event.data["type"] == ResponseReceived.TYPE
        assert event.data["data"]["response_id"] == str(first)
        second = await submit(sessionmaker, ctx)
        headers = {**auth, "Last-Event-ID": event.id}
        async with http.stream("GET", "/v1/registry/stream", headers=headers) as resumed:
            [missed] = await read_events(resumed, 1)
        assert missed.data["data"]["response_id"] == str(second)
        assert int(missed.id) > int(event.id)
        bad = await http.get("/v1/registry/stream", headers={**auth, "Last-Event-ID": "x"})
        assert bad.status_code == 422
    for _ in range(100):
        if state_of(registry.app, RegistryState).viewers.open == 0:
            break
        await asyncio.sleep(0.02)
    assert state_of(registry.app, RegistryState).viewers.open == 0, (
        "a disconnected viewer kept polling"
    )


async def test_stream_filters_by_response_and_carries_metadata_only(
    registry: Registry, sessionmaker: async_sessionmaker[AsyncSession], ctx: Context
) -> None:
    start = await outbox_head(sessionmaker)
    world = await build_world(sessionmaker, ctx)
    async with transaction(sessionmaker) as session:
        # one event a row, but a summary of exclusions streams one `delivery.excluded` each
        each = func.coalesce(func.jsonb_array_length(OutboxEvent.payload["exclusions"]), 1)
        expected = await session.scalar(
            select(func.sum(each))
            .select_from(OutboxEvent)
            .where(
                OutboxEvent.id > start,
                OutboxEvent.topic == f"{ctx.topic_prefix}.deliveries.v1",
                OutboxEvent.payload["response_id"].astext == str(world.routed),
            )
        )
    headers = {**registry.issuer.auth(COORDINATOR), "Last-Event-ID": str(start)}
    params = {"response_id": str(world.routed)}
    async with (
        serving(registry.app) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
        http.stream("GET", "/v1/registry/stream", params=params, headers=headers) as live,
    ):
        events = await read_events(live, (expected or 0) + 1)
    names = [e.event for e in events]
    assert names[0] == "response.received"
    assert {"delivery.excluded", "delivery.published", "delivery.acknowledged"} <= set(names)
    assert {e.data["data"]["response_id"] for e in events} == {str(world.routed)}
    assert [int(e.id) for e in events] == sorted(int(e.id) for e in events)
    raw = "".join(f"{e.id}{e.event}{e.data}" for e in events)
    assert_metadata_only(raw, world.forbidden)


async def test_tail_picks_up_an_event_that_commits_after_a_later_one(
    sessionmaker: async_sessionmaker[AsyncSession], topic_prefix: str
) -> None:
    def event() -> ResponseReceived:
        return ResponseReceived(
            response_id=uuid.uuid4(),
            platform="telegram",
            handling_code="H0",
            emergency=False,
            received_at=datetime.now(UTC),
        )

    tail = OutboxTail(prefix=topic_prefix, last_id=await outbox_head(sessionmaker))
    slow, fast = event(), event()
    async with sessionmaker() as held, held.begin():
        outbox.add(held, slow, key="k", subject=None, prefix=topic_prefix)
        await held.flush()  # takes the lower id, commits last
        async with transaction(sessionmaker) as quick:
            outbox.add(quick, fast, key="k", subject=None, prefix=topic_prefix)
        async with transaction(sessionmaker) as session:
            seen = await tail.poll(session)
        assert [e.data["data"]["response_id"] for e in seen] == [str(fast.response_id)]
        assert tail.gaps
    async with transaction(sessionmaker) as session:
        late = await tail.poll(session)
    assert [e.data["data"]["response_id"] for e in late] == [str(slow.response_id)]
    assert not tail.gaps


async def test_a_summary_of_exclusions_streams_as_one_event_per_jurisdiction(
    sessionmaker: async_sessionmaker[AsyncSession], topic_prefix: str
) -> None:
    response_id, now = uuid.uuid4(), datetime.now(UTC)
    refused = [
        ExcludedJurisdiction(
            exclusion_id=uuid.uuid4(), jurisdiction=code, reason="no_open_case", detail=code
        )
        for code in ("US", "NO", "CH")
    ]
    summary = JurisdictionsExcluded(response_id=response_id, decided_at=now, exclusions=refused)
    old = JurisdictionExcluded(  # a record from before the summary, still on the topic
        exclusion_id=uuid.uuid4(),
        response_id=response_id,
        jurisdiction="GB",
        reason="no_open_case",
        detail="GB",
        decided_at=now,
    )
    tail = OutboxTail(
        prefix=topic_prefix, last_id=await outbox_head(sessionmaker), response_id=response_id
    )
    key = str(response_id)
    async with transaction(sessionmaker) as session:
        outbox.add(session, summary, key=key, subject=key, prefix=topic_prefix)
        outbox.add(
            session, old, key=key, subject=None, prefix=topic_prefix, event_id=old.exclusion_id
        )
    async with transaction(sessionmaker) as session:
        seen = await tail.poll(session)
    assert [e.name for e in seen] == ["delivery.excluded"] * 4
    each = [
        JurisdictionExcluded(response_id=response_id, decided_at=now, **dict(item))
        for item in refused
    ]
    assert [e.data["data"] for e in seen] == [x.model_dump(mode="json") for x in (*each, old)]
    assert [e.data["event_id"] for e in seen] == [str(x.exclusion_id) for x in (*each, old)]
    assert {e.data["type"] for e in seen} == {JurisdictionExcluded.TYPE}
    # a viewer resuming from any but the summary's last event gets the whole summary again
    row = seen[2].outbox_id
    assert [e.outbox_id for e in seen[:3]] == [row - 1, row - 1, row]
    assert seen[3].outbox_id > row


def test_gaps_are_forgotten_after_their_grace_period() -> None:
    now = [100.0]
    tail = OutboxTail(prefix="x", last_id=4, clock=lambda: now[0])
    tail.advance([5, 8])
    assert (tail.last_id, sorted(tail.gaps)) == (8, [6, 7])
    tail.advance([6])
    assert sorted(tail.gaps) == [7]
    now[0] += GAP_GRACE_SECONDS + 1
    tail.advance([])
    assert tail.gaps == {}


async def test_tail_streams_a_recall_with_counts_and_no_recipient_notice(
    sessionmaker: async_sessionmaker[AsyncSession], ctx: Context
) -> None:
    shared = factories.selector()
    fr = await register(sessionmaker, ctx, FR, selectors=[shared])
    async with transaction(sessionmaker) as session:
        sent = await responses.submit(
            session,
            platform="telegram",
            client_id="platform-telegram",
            data=factories.response(case_ids=[fr.id], disclosures=[factories.disclosure(shared)]),
            ctx=ctx,
        )
    async with transaction(sessionmaker) as session:
        await fanout.decide_and_record(session, response_id=sent.id, prefix=ctx.topic_prefix)
    tail = OutboxTail(
        prefix=ctx.topic_prefix, last_id=await outbox_head(sessionmaker), response_id=sent.id
    )
    platform = evidence.Recaller(client_id="platform-telegram", platform="telegram")
    async with transaction(sessionmaker) as session:
        await evidence.recall(
            session, response_id=sent.id, who=platform, reason="sent in error", ctx=ctx
        )
    async with transaction(sessionmaker) as session:
        streamed = [(e.name, e.data["data"]) for e in await tail.poll(session)]
    # the desk's live view marks the unacknowledged deliveries recalled; the per-recipient
    # notices (on the recipients' inbox topics) are never streamed
    assert [(n, d["withdrawn"], d["deletion_requested"]) for n, d in streamed] == [
        ("response.recalled", 1, 0)
    ]
