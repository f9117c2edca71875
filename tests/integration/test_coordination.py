"""Coordination by consent, through the real intake app and the router's fan-out.

KR (associated) names FR as coordinator: its case gets nothing until FR accepts, and nothing new
once FR withdraws. Only the named coordinator may answer; everyone else gets 404. Every step is
audited and told to the opener.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from caseshare.stack.embedded import EmbeddedTansu
from services.registry.audit import service as audit
from services.registry.audit.models import AuditEntry
from services.registry.deliveries.models import Exclusion
from services.registry.store.models import OutboxEvent
from shared.db import transaction
from shared.events import CoordinationDecided, CoordinationRequested, topic_name
from tests.hub import Hub, disclosure, response_body, rows, running_hub, selector

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


async def _voluntary(hub: Hub, sel: dict[str, str]) -> uuid.UUID:
    return await hub.respond(
        response_body(requesting=None, scope=[sel], disclosures=[disclosure(sel, "192.0.2.7")])
    )


async def _told(hub: Hub, event_type: str, code: str, case_id: str) -> list[dict[str, object]]:
    async with transaction(hub.sm) as s:
        found = await s.scalars(
            select(OutboxEvent.payload).where(
                OutboxEvent.event_type == event_type,
                OutboxEvent.topic == topic_name(hub.prefix, "inbox", code),
                OutboxEvent.key == case_id,
            )
        )
        return list(found.all())


async def test_kr_gets_nothing_until_fr_accepts_and_nothing_new_after_fr_withdraws(
    hub: Hub,
) -> None:
    shared = selector()
    kr = await hub.case("KR", [shared], coordinating_jurisdiction="FR")
    assert (kr["status"], kr["coordination_state"]) == ("pending_coordination", "pending")
    assert await _told(hub, CoordinationRequested.TYPE, "FR", kr["id"])

    first = await _voluntary(hub, shared)
    assert (await rows(hub, Exclusion, first))["KR"].reason == "pending_coordination"
    assert await hub.delivered("KR", first) == []
    # the opener cannot open it itself
    reopen = await hub.intake.client.patch(
        f"/v1/cases/{kr['id']}", json={"status": "open"}, headers=hub.intake.authority("KR")
    )
    assert reopen.status_code == 422

    listed = (await hub.get("FR", "/v1/coordination", state="pending"))["items"]
    assert kr["id"] in [c["case_id"] for c in listed]
    accepted = await hub.post("FR", f"/v1/cases/{kr['id']}/coordination", {"decision": "accept"})
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["case_status"], accepted.json()["coordination_state"]) == (
        "open",
        "accepted",
    )
    second = await _voluntary(hub, shared)
    assert len(await hub.delivered("KR", second)) == 1

    withdrawn = await hub.post(
        "FR",
        f"/v1/cases/{kr['id']}/coordination/withdrawal",
        {"reason": "FR's desk can no longer coordinate this matter"},
    )
    assert withdrawn.status_code == 200, withdrawn.text
    case = await hub.get("KR", f"/v1/cases/{kr['id']}")
    assert (case["status"], case["coordination_state"]) == ("suspended", "withdrawn")
    third = await _voluntary(hub, shared)
    assert await hub.delivered("KR", third) == []
    assert (await rows(hub, Exclusion, third))["KR"].reason == "case_not_open"
    reopen = await hub.intake.client.patch(
        f"/v1/cases/{kr['id']}", json={"status": "open"}, headers=hub.intake.authority("KR")
    )
    assert reopen.status_code == 422

    # told to the opener each time, and audited each time
    told = await _told(hub, CoordinationDecided.TYPE, "KR", kr["id"])
    assert [t["coordination_state"] for t in told] == ["accepted", "withdrawn"]
    assert told[1]["reason"] == "FR's desk can no longer coordinate this matter"
    async with transaction(hub.sm) as s:
        await audit.drain(s)
        actions = (
            await s.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.subject_id == kr["id"], AuditEntry.action.like("case.%"))
                .order_by(AuditEntry.seq)
            )
        ).all()
    assert actions == [
        "case.registered",
        "case.coordination_accepted",
        "case.coordination_withdrawn",
    ]


async def test_only_the_named_coordinator_may_answer(hub: Hub) -> None:
    kr = await hub.case("KR", [selector()], coordinating_jurisdiction="FR")
    path = f"/v1/cases/{kr['id']}/coordination"
    for code in ("KR", "DE", "US"):
        answer = await hub.post(code, path, {"decision": "accept"})
        assert answer.status_code == 404, code
        withdraw = await hub.post(code, f"{path}/withdrawal", {"reason": "not mine"})
        assert withdraw.status_code == 404, code
        listed = (await hub.get(code, "/v1/coordination", limit=100))["items"]
        assert kr["id"] not in [c["case_id"] for c in listed], code
    declined = await hub.post("FR", path, {"decision": "decline", "reason": "no basis"})
    assert declined.json()["coordination_state"] == "declined"
    assert (await hub.post("FR", path, {"decision": "accept"})).status_code == 422
    assert (await hub.get("KR", f"/v1/cases/{kr['id']}"))["status"] == "suspended"
    bad = await hub.post("FR", path, {"decision": "accept", "reason": "nul\u0000"})
    assert bad.status_code == 422
