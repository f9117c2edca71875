"""The originator decides onward sharing, end to end through the real intake app, the router's
fan-out and reconciler, real PostgreSQL and the real broker.

The seed story: FR's case is answered; FR receives at once, DE and BE are held; FR releases DE
(whose payload holds only the disclosure about its own selector) and withholds BE, which ends
excluded as `withheld_by_originator` with FR's reason. Then: H1 under a `members` policy, H3
conditions accepted on acknowledgement, the lapse of an undecided hold, and who may decide.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from caseshare.stack.embedded import EmbeddedTansu
from services.registry.deliveries.models import Delivery, Exclusion
from services.registry.oversight import service as oversight
from services.registry.releases.models import Release
from services.registry.store.models import OutboxEvent
from services.registry.web.stream import OutboxTail
from shared.db import transaction
from shared.events import ReleaseRequested, topic_name
from tests.hub import (
    Hub,
    disclosure,
    response_body,
    rows,
    running_hub,
    selector,
    unseal,
)

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


async def outbox_head(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.coalesce(func.max(OutboxEvent.id), 0))) or 0)


async def test_seed_story_fr_receives_at_once_then_releases_de_and_withholds_be(
    hub: Hub, keys_dir: Path
) -> None:
    group, de_handle, be_handle = selector("group_id"), selector(), selector()
    fr = await hub.case("FR", [group, de_handle, be_handle])
    await hub.case("DE", [de_handle])
    await hub.case("BE", [be_handle])
    rid = await hub.respond(
        response_body(
            requesting=fr["id"],
            scope=[de_handle, be_handle],
            disclosures=[
                disclosure(group, "203.0.113.1"),
                disclosure(de_handle, "203.0.113.2"),
                disclosure(be_handle, "203.0.113.3"),
            ],
        )
    )

    # FR receives at once, everything in scope; DE and BE are held and receive nothing yet
    [fr_delivery] = await hub.delivered("FR", rid)
    assert [d["records"][0]["value"] for d in await unseal(hub, fr_delivery, keys_dir)] == [
        "203.0.113.1",
        "203.0.113.2",
        "203.0.113.3",
    ]
    states = {c: d.state for c, d in (await rows(hub, Delivery, rid)).items()}
    assert states == {"FR": "published", "DE": "held", "BE": "held"}
    assert await hub.delivered("DE", rid) == []
    assert not await hub.inbox("DE", rid)

    # FR is told over Kafka (its inbox, via the outbox) and over REST
    async with transaction(hub.sm) as s:
        told = (
            await s.scalars(
                select(OutboxEvent.payload).where(
                    OutboxEvent.event_type == ReleaseRequested.TYPE,
                    OutboxEvent.topic == topic_name(hub.prefix, "inbox", "FR"),
                    OutboxEvent.payload["response_id"].astext == str(rid),
                )
            )
        ).all()
    assert sorted(p["recipient"] for p in told) == ["BE", "DE"]
    pending = [
        r for r in (await hub.get("FR", "/v1/releases"))["items"] if r["response_id"] == str(rid)
    ]
    by_code = {r["jurisdiction"]: r for r in pending}
    assert set(by_code) == {"BE", "DE"}
    assert all(r["state"] == "held" for r in pending)

    # only the originator decides: DE cannot release itself, BE cannot see FR's decisions
    de_try = await hub.post("DE", f"/v1/releases/{by_code['DE']['id']}", {"decision": "release"})
    assert de_try.status_code == 404
    assert not [
        r for r in (await hub.get("BE", "/v1/releases"))["items"] if r["response_id"] == str(rid)
    ]

    async with transaction(hub.sm) as s:
        tail = OutboxTail(prefix=hub.prefix, last_id=await outbox_head(s), response_id=rid)
    released = await hub.post("FR", f"/v1/releases/{by_code['DE']['id']}", {"decision": "release"})
    assert released.status_code == 200, released.text
    withheld = await hub.post(
        "FR",
        f"/v1/releases/{by_code['BE']['id']}",
        {"decision": "withhold", "reason": "BE's proceedings are not yet authorised"},
    )
    assert withheld.json()["state"] == "withheld"
    again = await hub.post("FR", f"/v1/releases/{by_code['BE']['id']}", {"decision": "release"})
    assert again.status_code == 422  # decided once; changes nothing

    # the coordination desk's live stream shows both decisions
    async with transaction(hub.sm) as s:
        streamed = await tail.poll(s)
    decided = {
        e.data["data"]["jurisdiction"]: e.data["data"]["state"]
        for e in streamed
        if e.name == "release.decided"
    }
    assert decided == {"DE": "released", "BE": "withheld"}
    swept = await hub.reconciler().sweep_releases()
    assert swept.published >= 1

    # DE receives only the disclosure about its own selector
    [de_delivery] = await hub.delivered("DE", rid)
    assert [d["records"][0]["value"] for d in await unseal(hub, de_delivery, keys_dir)] == [
        "203.0.113.2"
    ]
    assert de_delivery.disclosure_count == 1
    # BE gets nothing, on any channel, and is excluded with FR's reason
    assert await hub.delivered("BE", rid) == []
    assert not await hub.inbox("BE", rid)
    exclusions = await rows(hub, Exclusion, rid)
    assert exclusions["BE"].reason == "withheld_by_originator"
    assert "not yet authorised" in exclusions["BE"].detail
    states = {c: d.state for c, d in (await rows(hub, Delivery, rid)).items()}
    assert states == {"FR": "published", "DE": "published", "BE": "withheld"}
    # the coordination desk's fan-out view: BE among the exclusions, with the new reason
    async with transaction(hub.sm) as s:
        view = await oversight.fanout(s, response_id=rid)
    assert sorted(d.jurisdiction for d in view.deliveries) == ["DE", "FR"]
    assert {e.jurisdiction: e.reason for e in view.exclusions}["BE"] == "withheld_by_originator"
    releases = await rows(hub, Release, rid)
    assert {c: (r.state, r.basis) for c, r in releases.items()} == {
        "FR": ("released", "requesting_party"),
        "DE": ("released", "originator_decision"),
        "BE": ("withheld", "originator_decision"),
    }


async def test_a_recipient_with_no_disclosure_about_its_selectors_gets_nothing(hub: Hub) -> None:
    shared, other = selector(), selector()
    fr = await hub.case("FR", [shared, other])
    await hub.case("DE", [shared])
    rid = await hub.respond(
        response_body(
            requesting=fr["id"], scope=[shared], disclosures=[disclosure(other, "198.51.100.9")]
        )
    )
    exclusions = await rows(hub, Exclusion, rid)
    assert exclusions["DE"].reason == "no_matching_disclosure"
    assert set(await rows(hub, Delivery, rid)) == {"FR"}


async def test_h1_under_a_members_policy_releases_nothing_without_a_decision(hub: Hub) -> None:
    shared = selector()
    fr = await hub.case("FR", [shared], release_policy="members")
    await hub.case("DE", [shared])
    answer = [disclosure(shared, "198.51.100.1")]
    h1 = await hub.respond(
        response_body(handling_code="H1", requesting=fr["id"], scope=[shared], disclosures=answer)
    )
    h0 = await hub.respond(
        response_body(handling_code="H0", requesting=fr["id"], scope=[shared], disclosures=answer)
    )
    assert {c: d.state for c, d in (await rows(hub, Delivery, h1)).items()} == {
        "FR": "published",
        "DE": "held",
    }
    assert (await rows(hub, Release, h0))["DE"].basis == "case_policy"
    assert (await rows(hub, Delivery, h0))["DE"].state == "published"
    # ... and the policy can be changed, by the opener only
    denied = await hub.intake.client.put(
        f"/v1/cases/{fr['id']}/release-policy",
        json={"release_policy": "none"},
        headers=hub.intake.authority("DE"),
    )
    assert denied.status_code == 404


async def test_h3_conditions_reach_the_recipient_and_are_accepted_on_acknowledgement(
    hub: Hub,
) -> None:
    shared = selector()
    await hub.case("DE", [shared])
    conditions = "Use only for the Rotterdam fraud investigation; no onward transfer."
    missing = await hub.intake.client.post(
        "/v1/responses",
        json=response_body(
            requesting=None,
            scope=[shared],
            disclosures=[disclosure(shared, "198.51.100.3")],
            handling_code="H3",
        ),
        headers=hub.intake.platform("telegram"),
    )
    assert missing.status_code == 422
    rid = await hub.respond(
        response_body(
            requesting=None,
            scope=[shared],
            disclosures=[disclosure(shared, "198.51.100.3")],
            handling_code="H3",
            handling_conditions=conditions,
        )
    )
    [event] = await hub.delivered("DE", rid)
    assert event.handling_conditions == conditions
    [item] = [
        i for i in (await hub.get("DE", "/v1/inbox"))["items"] if i["response_id"] == str(rid)
    ]
    assert item["handling_conditions"] == conditions
    path = f"/v1/inbox/{item['delivery_id']}/ack"
    refused = await hub.post("DE", path)
    assert refused.status_code == 422
    refused = await hub.post("DE", path, {"accept_conditions": False})
    assert refused.status_code == 422
    accepted = await hub.post("DE", path, {"accept_conditions": True})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["conditions_accepted_at"] is not None
    delivery = (await rows(hub, Delivery, rid))["DE"]
    assert delivery.conditions_accepted_at is not None
    async with transaction(hub.sm) as s:
        acked = await s.scalar(
            select(OutboxEvent.payload).where(
                OutboxEvent.event_type == "eu.caseshare.delivery.acknowledged.v1",
                OutboxEvent.subject == str(delivery.id),
            )
        )
    assert acked is not None
    assert acked["conditions_accepted"] is True


async def test_an_undecided_hold_is_reminded_then_lapses(hub: Hub) -> None:
    shared = selector()
    fr = await hub.case("FR", [shared])
    await hub.case("DE", [shared])
    rid = await hub.respond(
        response_body(
            requesting=fr["id"], scope=[shared], disclosures=[disclosure(shared, "192.0.2.4")]
        )
    )
    held = (await rows(hub, Release, rid))["DE"]
    assert held.lapses_at is not None
    # three days before the lapse: a reminder, once
    soon = held.lapses_at - timedelta(days=2)
    await hub.reconciler(soon).sweep_releases()
    await hub.reconciler(soon).sweep_releases()
    async with transaction(hub.sm) as s:
        reminders = (
            await s.scalars(
                select(OutboxEvent.payload).where(
                    OutboxEvent.event_type == ReleaseRequested.TYPE,
                    OutboxEvent.payload["release_id"].astext == str(held.id),
                )
            )
        ).all()
    assert sorted(p["reminder"] for p in reminders) == [False, True]
    assert (await rows(hub, Delivery, rid))["DE"].state == "held"
    # past it: lapsed, excluded with the reason, never published
    await hub.reconciler(held.lapses_at + timedelta(seconds=1)).run_once()
    assert (await rows(hub, Release, rid))["DE"].state == "lapsed"
    assert (await rows(hub, Exclusion, rid))["DE"].reason == "release_lapsed"
    assert (await rows(hub, Delivery, rid))["DE"].state == "withheld"
    assert await hub.delivered("DE", rid) == []
    late = await hub.post("FR", f"/v1/releases/{held.id}", {"decision": "release"})
    assert late.status_code == 422


async def test_a_voluntary_disclosure_keeps_todays_behaviour_and_says_so(hub: Hub) -> None:
    shared = selector()
    await hub.case("FR", [shared])
    await hub.case("DE", [shared])
    rid = await hub.respond(
        response_body(
            requesting=None, scope=[shared], disclosures=[disclosure(shared, "192.0.2.9")]
        )
    )
    decided = await rows(hub, Release, rid)
    assert {c: (r.state, r.basis) for c, r in decided.items()} == {
        "FR": ("released", "voluntary_disclosure"),
        "DE": ("released", "voluntary_disclosure"),
    }
    assert {c: d.state for c, d in (await rows(hub, Delivery, rid)).items()} == {
        "FR": "published",
        "DE": "published",
    }
