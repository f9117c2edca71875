"""Hit/no-hit cross-matching through the real intake app: a link notice says only that an open
case of another jurisdiction on the same platform shares a selector. Neither side's case id or
reference reaches the other, on any event of its inbox topic (payload, key or subject) or any
REST body it can read, until both have consented; then each is told the other's reference.
Cases pending coordination and suspended jurisdictions get no notices.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from caseshare.stack.embedded import EmbeddedTansu
from services.registry.reference.models import Jurisdiction
from services.registry.store.models import OutboxEvent
from shared.db import transaction
from shared.events import CaseLinkDisclosed, CaseLinkFound, topic_name
from tests.hub import Hub, running_hub, selector

pytestmark = pytest.mark.integration


@pytest.fixture
async def hub(
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    topic_prefix: str,
    broker: EmbeddedTansu,
) -> AsyncIterator[Hub]:
    async with running_hub(database_url, sessionmaker, topic_prefix, broker) as h:
        yield h


@pytest.fixture
async def suspended_lu(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[str]:
    yield "LU"
    async with transaction(sessionmaker) as session:
        await session.execute(
            update(Jurisdiction).where(Jurisdiction.code == "LU").values(status="member")
        )


async def inbox_events(hub: Hub, code: str) -> list[dict[str, Any]]:
    """Every event queued for `code`'s inbox topic, with its record key and subject."""
    async with transaction(hub.sm) as s:
        found = await s.execute(
            select(
                OutboxEvent.event_type, OutboxEvent.key, OutboxEvent.subject, OutboxEvent.payload
            )
            .where(OutboxEvent.topic == topic_name(hub.prefix, "inbox", code))
            .order_by(OutboxEvent.id)
        )
        return [dict(row._mapping) for row in found]


async def of_type(hub: Hub, code: str, event_type: str) -> list[dict[str, Any]]:
    return [e for e in await inbox_events(hub, code) if e["event_type"] == event_type]


async def visible(hub: Hub, code: str) -> str:
    """Everything `code` can read about links: its inbox events and its REST bodies."""
    bodies = [
        await inbox_events(hub, code),
        await hub.get(code, "/v1/links"),
        await hub.get(code, "/v1/cases", limit=100),
        await hub.get(code, "/v1/coordination", limit=100),
        await hub.get(code, "/v1/releases", limit=100),
    ]
    return orjson.dumps(bodies, default=str).decode()


def assert_hidden(text: str, case: dict[str, Any]) -> None:
    assert case["id"] not in text
    assert case["reference"] not in text


async def test_references_flow_only_once_both_sides_consent(hub: Hub) -> None:
    shared = selector()
    fr = await hub.case("FR", [shared])
    de = await hub.case("DE", [shared])
    assert_hidden(orjson.dumps(de).decode(), fr)  # DE's registration answer names no FR case

    for code, other in (("FR", de), ("DE", fr)):
        [notice] = [
            e for e in await inbox_events(hub, code) if e["event_type"] == CaseLinkFound.TYPE
        ]
        assert notice["payload"]["other_jurisdiction"] == other["opened_by"]
        assert set(notice["payload"]) == {
            "link_id",
            "jurisdiction",
            "other_jurisdiction",
            "platform",
            "found_at",
        }
        assert notice["key"] == notice["subject"] == notice["payload"]["link_id"]
        assert_hidden(await visible(hub, code), other)

    [link] = [x for x in await hub.get("FR", "/v1/links") if x["case_id"] == fr["id"]]
    assert (link["consented"], link["other_consented"], link["other_case_reference"]) == (
        False,
        False,
        None,
    )
    # a stranger can neither consent nor see the link
    assert (await hub.post("US", f"/v1/links/{link['id']}/consent")).status_code == 404
    assert link["id"] not in await visible(hub, "US")

    first = await hub.post("FR", f"/v1/links/{link['id']}/consent")
    assert first.status_code == 200, first.text
    assert first.json()["other_case_reference"] is None
    for code, other in (("FR", de), ("DE", fr)):
        assert_hidden(await visible(hub, code), other)

    second = await hub.post("DE", f"/v1/links/{link['id']}/consent")
    assert second.json()["other_case_reference"] == fr["reference"]
    [fr_view] = [x for x in await hub.get("FR", "/v1/links") if x["id"] == link["id"]]
    assert fr_view["other_case_reference"] == de["reference"]
    for code, other in (("FR", de), ("DE", fr)):
        [told] = await of_type(hub, code, CaseLinkDisclosed.TYPE)
        assert told["payload"]["other_case_reference"] == other["reference"]
    again = await hub.post("DE", f"/v1/links/{link['id']}/consent")
    assert again.status_code == 200
    disclosed = [
        e for e in await inbox_events(hub, "DE") if e["event_type"] == CaseLinkDisclosed.TYPE
    ]
    assert len(disclosed) == 1  # consenting twice tells nobody twice


async def test_no_notices_for_pending_coordination_or_suspended_jurisdictions(
    hub: Hub, suspended_lu: str
) -> None:
    pending_sel, suspended_sel = selector(), selector()
    await hub.case("KR", [pending_sel], coordinating_jurisdiction="FR")
    await hub.case("DE", [pending_sel])
    await hub.case(suspended_lu, [suspended_sel])
    async with transaction(hub.sm) as s:
        await s.execute(
            update(Jurisdiction).where(Jurisdiction.code == suspended_lu).values(status="suspended")
        )
    await hub.case("BE", [suspended_sel])
    for code in ("KR", "DE", "FR", suspended_lu, "BE"):
        notices = [
            e for e in await inbox_events(hub, code) if e["event_type"] == CaseLinkFound.TYPE
        ]
        assert notices == [], code
