"""Legal requests over REST: the three types end to end, the platform's and the authority's
sides, the enforcing state's review, access, refusals that change nothing, and the clocks on
an injected clock (never slept out).

The requests commit, so the module runs on a database of its own. The scheduler fires every
due timer of that database; assertions therefore look only at this test's requests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from caseshare.stack.embedded import EmbeddedTansu
from services.intake.state import IntakeState
from services.registry.audit.models import AuditEntry, QueuedAuditEntry
from services.registry.cases.schemas import SelectorIn
from services.registry.requests.models import LegalRequest, RequestHistory, RequestTimer
from services.registry.responses.models import CooperationResponse
from services.registry.store.models import OutboxEvent
from services.router.metrics import RouterMetrics
from services.router.relay import OutboxRelay
from services.router.scheduler import Scheduler
from shared.db import create_sessionmaker, transaction
from shared.events import topic_name
from shared.kafka import TopicProvisioner, decode, make_producer
from shared.state import state_of
from tests import factories
from tests.intake_api import Intake, running, settings_for
from tests.kafka_utils import read_topic

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


@dataclass
class FakeClock:
    """The hub's "now", moved by the test."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def sm(db: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(db)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def intake(
    database: str, db: AsyncEngine, topic_prefix: str, clock: FakeClock
) -> AsyncIterator[Intake]:
    async with running(settings_for(database, topic_prefix)) as app:
        state_of(app.app, IntakeState).clock = clock
        yield app


def scheduler(
    sm: async_sessionmaker[AsyncSession], database: str, prefix: str, clock: FakeClock
) -> Scheduler:
    return Scheduler(sm, database_url=database, prefix=prefix, metrics=RouterMetrics(), clock=clock)


@dataclass
class Scene:
    """An open case of `code` on `platform`, with the selector it names in clear."""

    case: dict[str, Any]
    selector: SelectorIn
    code: str


async def open_case(intake: Intake, code: str = "FR", platform: str = "telegram") -> Scene:
    sel = factories.selector()
    body = factories.case(platform=platform, selectors=[sel]).model_dump(mode="json")
    answer = await intake.client.post("/v1/cases", json=body, headers=intake.authority(code))
    assert answer.status_code == 201, answer.text
    return Scene(case=answer.json(), selector=sel, code=code)


def order(scene: Scene, kind: str = "production", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "case_id": scene.case["id"],
        "type": kind,
        "platform": scene.case["platform"],
        "categories": ["subscriber"],
        "selectors": [scene.selector.model_dump(mode="json")],
        "legal_basis": "Art. 5 Regulation (EU) 2023/1543",
        "issuing_authority": "Parquet de Paris",
    }
    return body | overrides


async def issue(
    intake: Intake, scene: Scene, kind: str = "production", **kw: Any
) -> dict[str, Any]:
    answer = await intake.client.post(
        "/v1/requests", json=order(scene, kind, **kw), headers=intake.authority(scene.code)
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def platform_step(
    intake: Intake, req: dict[str, Any], step: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    return await intake.client.post(
        f"/v1/platform/requests/{req['id']}/{step}",
        json=body,
        headers=intake.platform(req["platform"]),
    )


async def answer(
    intake: Intake, scene: Scene, req: dict[str, Any], **overrides: Any
) -> httpx.Response:
    data = factories.response(
        case_ids=[uuid.UUID(scene.case["id"])],
        selectors=[scene.selector],
        request_id=uuid.UUID(req["id"]),
        **overrides,
    ).model_dump(mode="json")
    return await intake.client.post(
        "/v1/responses", json=data, headers=intake.platform(req["platform"])
    )


async def show(intake: Intake, req: dict[str, Any], code: str) -> dict[str, Any]:
    got = await intake.client.get(f"/v1/requests/{req['id']}", headers=intake.authority(code))
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


async def outbox_types(
    sm: async_sessionmaker[AsyncSession], request_id: str, *, topic_part: str = ".requests."
) -> list[str]:
    async with transaction(sm) as s:
        rows = await s.scalars(
            select(OutboxEvent.event_type)
            .where(OutboxEvent.key == request_id, OutboxEvent.topic.contains(topic_part))
            .order_by(OutboxEvent.id)
        )
        return [t.removeprefix("eu.caseshare.request.").removesuffix(".v1") for t in rows]


# lifecycles


async def test_production_issue_acknowledge_clarify_answer_over_rest(
    intake: Intake, sm: async_sessionmaker[AsyncSession]
) -> None:
    scene = await open_case(intake)
    req = await issue(intake, scene)
    assert (req["state"], req["enforcing_jurisdiction"], req["review_state"]) == (
        "issued",
        "BE",
        "not_required",
    )
    inbox = await intake.client.get(
        "/v1/platform/requests", params={"state": "issued"}, headers=intake.platform("telegram")
    )
    assert req["id"] in [r["id"] for r in inbox.json()["items"]]
    assert (await platform_step(intake, req, "acknowledge")).json()["state"] == "acknowledged"
    asked = await platform_step(
        intake,
        req,
        "request-clarification",
        {"ground": "insufficient_information", "detail": "which account?"},
    )
    assert asked.json()["paused"] is True
    clarified = await intake.client.post(
        f"/v1/requests/{req['id']}/clarify",
        json={"detail": "the group named"},
        headers=intake.authority("FR"),
    )
    assert clarified.json()["state"] == "clarified", clarified.text
    accepted = await answer(intake, scene, req)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["fanout_state"] == "received"

    final = await show(intake, req, "FR")
    assert final["state"] == "answered"
    assert final["history"][0]["from_state"] is None
    assert [h["action"] for h in final["history"]] == [
        "issued",
        "acknowledged",
        "clarification_requested",
        "clarified",
        "answered",
    ]
    async with transaction(sm) as s:
        resp = await s.get(CooperationResponse, uuid.UUID(accepted.json()["id"]))
        assert resp is not None
        assert str(resp.requesting_case_id) == scene.case["id"]
        received = await s.scalar(
            select(func.count()).where(
                OutboxEvent.key == str(resp.id),
                OutboxEvent.event_type == "eu.caseshare.response.received.v1",
            )
        )
    assert received == 1  # the router's fan-out follows, unchanged
    async with transaction(sm) as s:
        audited = [
            str(d)
            for model in (QueuedAuditEntry, AuditEntry)
            for d in await s.scalars(select(model.details).where(model.subject_id == req["id"]))
        ]
    assert len(audited) >= 5  # each step, and the reads
    assert not [d for d in audited if "which account?" in d or "the group named" in d]
    assert await outbox_types(sm, req["id"]) == [
        "issued",
        "acknowledged",
        "clarification-requested",
        "clarified",
        "answered",
    ]


async def test_issuing_again_with_the_same_idempotency_key_returns_the_first_request(
    intake: Intake, sm: async_sessionmaker[AsyncSession]
) -> None:
    scene = await open_case(intake)
    headers = intake.authority("FR") | {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    first = await intake.client.post("/v1/requests", json=order(scene), headers=headers)
    again = await intake.client.post("/v1/requests", json=order(scene), headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    async with transaction(sm) as s:
        count = await s.scalar(
            select(func.count()).where(LegalRequest.case_id == uuid.UUID(scene.case["id"]))
        )
    assert count == 1


async def test_emergency_refused_then_invalid_transition_is_409_and_changes_nothing(
    intake: Intake, sm: async_sessionmaker[AsyncSession]
) -> None:
    scene = await open_case(intake)
    req = await issue(intake, scene, "emergency_production")
    refused = await platform_step(
        intake, req, "refuse", {"ground": "data_not_held", "detail": "no such account"}
    )
    assert refused.json()["state"] == "refused"
    before = await show(intake, req, "FR")
    again = await platform_step(intake, req, "acknowledge")
    assert again.status_code == 409
    assert again.headers["content-type"].startswith(PROBLEM)
    assert await show(intake, req, "FR") == before
    late = await answer(intake, scene, req)
    assert late.status_code == 409
    async with transaction(sm) as s:
        stored = await s.scalar(
            select(func.count()).where(CooperationResponse.request_id == uuid.UUID(req["id"]))
        )
    assert stored == 0


async def test_preservation_extended_once_then_followed_by_a_production(
    intake: Intake, sm: async_sessionmaker[AsyncSession]
) -> None:
    scene = await open_case(intake)
    kept = await issue(intake, scene, "preservation")
    until = (datetime.now(UTC) + timedelta(days=60)).isoformat()
    confirmed = await platform_step(intake, kept, "confirm-preserved", {"preserved_until": until})
    assert confirmed.json()["state"] == "preserved"
    fr = intake.authority("FR")
    extended = await intake.client.post(f"/v1/requests/{kept['id']}/extend", headers=fr)
    deadline = datetime.fromisoformat(extended.json()["deadline_at"])
    assert deadline - datetime.fromisoformat(kept["deadline_at"]) == timedelta(days=30)
    twice = await intake.client.post(f"/v1/requests/{kept['id']}/extend", headers=fr)
    assert twice.status_code == 409

    production = await issue(intake, scene, follows_request_id=kept["id"])
    assert (await answer(intake, scene, production)).status_code == 202
    assert (await show(intake, production, "FR"))["state"] == "answered"
    assert (await show(intake, kept, "FR"))["state"] == "ended"
    assert (await outbox_types(sm, kept["id"]))[-1] == "preservation-ended"


async def test_withdrawal_stops_the_clocks(
    intake: Intake, sm: async_sessionmaker[AsyncSession]
) -> None:
    scene = await open_case(intake)
    req = await issue(intake, scene)
    gone = await intake.client.post(
        f"/v1/requests/{req['id']}/withdraw",
        json={"reason": "case closed"},
        headers=intake.authority("FR"),
    )
    assert gone.json()["state"] == "withdrawn"
    assert (await platform_step(intake, req, "acknowledge")).status_code == 409
    async with transaction(sm) as s:
        unfired = await s.scalar(
            select(func.count()).where(
                RequestTimer.request_id == uuid.UUID(req["id"]), RequestTimer.fired_at.is_(None)
            )
        )
    assert unfired == 0


async def test_the_platform_follows_its_orders_over_kafka(
    intake: Intake,
    sm: async_sessionmaker[AsyncSession],
    database: str,
    broker: EmbeddedTansu,
    topic_prefix: str,
) -> None:
    scene = await open_case(intake, "DE", "chirp")
    req = await issue(intake, scene, categories=["content"], validated_by="Amtsgericht Berlin")
    await platform_step(intake, req, "acknowledge")
    await platform_step(
        intake, req, "request-clarification", {"ground": "manifest_errors", "detail": "dates"}
    )
    await intake.client.post(
        f"/v1/requests/{req['id']}/clarify",
        json={"detail": "fixed"},
        headers=intake.authority("DE"),
    )
    content = factories.disclosure(scene.selector).model_copy(update={"category": "content"})
    assert (await answer(intake, scene, req, disclosures=[content])).status_code == 202

    producer = make_producer(broker.bootstrap, client_id="requests-test")
    provisioner = TopicProvisioner(broker.bootstrap, partitions=1)
    await producer.start()
    await provisioner.start()
    try:
        relay = OutboxRelay(sm, producer, provisioner, database_url=database, batch=500)
        while await relay.publish_batch():
            pass
    finally:
        await producer.stop()
        await provisioner.close()

    topic = topic_name(topic_prefix, "platform", platform="chirp")
    records = await read_topic(broker.bootstrap, topic, expect=5)
    envelopes = [decode(r.value, r.headers) for r in records]
    assert [e.ce_type.split(".")[3] for e in envelopes] == [
        "issued",
        "acknowledged",
        "clarification-requested",
        "clarified",
        "answered",
    ]
    assert {r.key for r in records} == {req["id"].encode()}
    [notice] = await read_topic(broker.bootstrap, topic_name(topic_prefix, "inbox", "IE"), expect=1)
    assert decode(notice.value, notice.headers).ce_type == "eu.caseshare.request.review-notified.v1"


# refusals at issue and answer


async def test_traffic_without_validation_is_422_and_stores_nothing(
    intake: Intake, sm: async_sessionmaker[AsyncSession]
) -> None:
    scene = await open_case(intake)
    refused = await intake.client.post(
        "/v1/requests",
        json=order(scene, categories=["traffic"]),
        headers=intake.authority("FR"),
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith(PROBLEM)
    async with transaction(sm) as s:
        count = await s.scalar(
            select(func.count()).where(LegalRequest.case_id == uuid.UUID(scene.case["id"]))
        )
    assert count == 0


async def test_a_response_beyond_its_request_is_422_and_nothing_is_stored(
    intake: Intake, sm: async_sessionmaker[AsyncSession]
) -> None:
    scene = await open_case(intake)
    req = await issue(intake, scene)
    other = factories.selector()
    outside = await answer(intake, scene, req, disclosures=[factories.disclosure(other)])
    assert outside.status_code == 422, outside.text
    traffic = factories.disclosure(scene.selector).model_copy(update={"category": "traffic"})
    beyond = await answer(intake, scene, req, disclosures=[traffic])
    assert beyond.status_code == 422
    async with transaction(sm) as s:
        stored = await s.scalar(
            select(func.count()).where(CooperationResponse.request_id == uuid.UUID(req["id"]))
        )
        state = await s.scalar(
            select(LegalRequest.state).where(LegalRequest.id == uuid.UUID(req["id"]))
        )
    assert (stored, state) == (0, "issued")
    by_another = await answer(intake, scene, req | {"platform": "chirp"})
    assert by_another.status_code == 422  # not the addressee


async def test_the_platform_inbox_is_newest_first_and_paginated(
    intake: Intake, clock: FakeClock
) -> None:
    scene = await open_case(intake)
    clock.advance(days=400)  # newer than any other test's request
    made = []
    for _ in range(3):
        clock.advance(seconds=1)
        made.append(await issue(intake, scene))
    seen: list[str] = []
    cursor = None
    while len(seen) < 3:
        params = {"limit": 1, "state": "issued"} | ({"cursor": cursor} if cursor else {})
        page = await intake.client.get(
            "/v1/platform/requests", params=params, headers=intake.platform("telegram")
        )
        seen += [r["id"] for r in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        # another page follows while ours are not all seen (other tests' older requests may
        # follow ours, or none: then the last page has no cursor)
        assert cursor or len(seen) == 3
    assert seen == [r["id"] for r in reversed(made)]


# access


async def test_each_party_sees_only_what_concerns_it(intake: Intake) -> None:
    fr = await open_case(intake, "FR", "telegram")
    traffic = await issue(intake, fr, categories=["traffic"], validated_by="Juge d'instruction")
    plain = await issue(intake, fr)
    de = await open_case(intake, "DE", "chirp")
    chirps = await issue(intake, de)

    listed = await intake.client.get("/v1/platform/requests", headers=intake.platform("telegram"))
    ids = {r["id"] for r in listed.json()["items"]}
    assert {traffic["id"], plain["id"]} <= ids
    assert chirps["id"] not in ids
    stranger = intake.platform("chirp")
    for path in (f"/v1/platform/requests/{plain['id']}", f"/v1/requests/{plain['id']}"):
        assert (await intake.client.get(path, headers=stranger)).status_code in (403, 404)
    assert (
        await platform_step(intake, plain | {"platform": "chirp"}, "acknowledge")
    ).status_code == 404

    # BE is telegram's enforcing state: it sees the traffic order it must review, nothing else
    be = intake.authority("BE")
    assert (await intake.client.get(f"/v1/requests/{traffic['id']}", headers=be)).status_code == 200
    assert (await intake.client.get(f"/v1/requests/{plain['id']}", headers=be)).status_code == 404
    for code in ("DE", "IT"):
        got = await intake.client.get(f"/v1/requests/{plain['id']}", headers=intake.authority(code))
        assert got.status_code == 404
        assert got.headers["content-type"].startswith(PROBLEM)
    mine = await intake.client.get("/v1/requests", headers=intake.authority("DE"))
    assert {r["id"] for r in mine.json()["items"]} >= {chirps["id"]}
    assert not {plain["id"], traffic["id"]} & {r["id"] for r in mine.json()["items"]}
    reviewing = await intake.client.get("/v1/requests", headers=be, params={"limit": 100})
    assert traffic["id"] in {r["id"] for r in reviewing.json()["items"]}
    assert plain["id"] not in {r["id"] for r in reviewing.json()["items"]}
    withdraw = await intake.client.post(
        f"/v1/requests/{traffic['id']}/withdraw", json={}, headers=be
    )
    assert withdraw.status_code == 403  # BE may see it, but only the issuer withdraws


# the enforcing state


async def _traffic_order_answered(intake: Intake) -> tuple[dict[str, Any], str]:
    """DE asks chirp (legal representative in IE) for traffic data; chirp answers at once."""
    scene = await open_case(intake, "DE", "chirp")
    req = await issue(
        intake, scene, categories=["traffic"], validated_by="Ermittlungsrichter, AG Berlin"
    )
    assert (req["state"], req["review_state"]) == ("awaiting_enforcing_review", "pending")
    notice = await intake.client.get(f"/v1/requests/{req['id']}", headers=intake.authority("IE"))
    assert notice.status_code == 200
    traffic = factories.disclosure(scene.selector).model_copy(update={"category": "traffic"})
    accepted = await answer(intake, scene, req, disclosures=[traffic])
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["fanout_state"] == "held_for_review"
    return req, accepted.json()["id"]


async def _received_events(sm: async_sessionmaker[AsyncSession], response_id: str) -> int:
    async with transaction(sm) as s:
        count: int = (
            await s.scalar(
                select(func.count()).where(
                    OutboxEvent.key == response_id,
                    OutboxEvent.event_type == "eu.caseshare.response.received.v1",
                )
            )
            or 0
        )
    return count


async def test_traffic_request_de_to_ie_is_held_until_the_window_closes(
    intake: Intake,
    sm: async_sessionmaker[AsyncSession],
    database: str,
    topic_prefix: str,
    clock: FakeClock,
) -> None:
    req, response_id = await _traffic_order_answered(intake)
    assert (await show(intake, req, "DE"))["state"] == "answered"
    assert await _received_events(sm, response_id) == 0
    async with transaction(sm) as s:
        inbox = await s.scalar(
            select(func.count()).where(
                OutboxEvent.key == req["id"], OutboxEvent.topic.endswith(".inbox.IE.v1")
            )
        )
    assert inbox == 1  # the enforcing state was notified over Kafka too

    clock.advance(days=10, seconds=-1)
    await scheduler(sm, database, topic_prefix, clock).tick()
    assert await _received_events(sm, response_id) == 0
    clock.advance(seconds=1)
    await scheduler(sm, database, topic_prefix, clock).tick()
    assert await _received_events(sm, response_id) == 1
    async with transaction(sm) as s:
        resp = await s.get(CooperationResponse, uuid.UUID(response_id))
        assert resp is not None
        assert resp.fanout_state == "received"
    assert (await show(intake, req, "IE"))["review_state"] == "window_closed"


async def test_an_objection_from_ie_means_no_delivery_and_plaintext_deleted(
    intake: Intake,
    sm: async_sessionmaker[AsyncSession],
    database: str,
    topic_prefix: str,
    clock: FakeClock,
) -> None:
    req, response_id = await _traffic_order_answered(intake)
    path = f"/v1/requests/{req['id']}/objection"
    by_de = await intake.client.post(
        path, json={"decision": "object", "grounds": "x"}, headers=intake.authority("DE")
    )
    assert by_de.status_code == 403
    objected = await intake.client.post(
        path,
        json={"decision": "object", "grounds": "ne bis in idem"},
        headers=intake.authority("IE"),
    )
    assert objected.status_code == 200, objected.text
    assert objected.json()["review_state"] == "objected"
    clock.advance(days=11)
    await scheduler(sm, database, topic_prefix, clock).tick()
    async with transaction(sm) as s:
        resp = await s.get(CooperationResponse, uuid.UUID(response_id))
        assert resp is not None
        assert (resp.fanout_state, resp.disclosures) == ("objected", None)
    assert await _received_events(sm, response_id) == 0
    assert "objected" in await outbox_types(sm, req["id"])
    assert "objected" in await outbox_types(sm, req["id"], topic_part=".platform.chirp.")
    late = await intake.client.post(
        path, json={"decision": "no_grounds"}, headers=intake.authority("IE")
    )
    assert late.status_code == 409


# clocks


async def _breaches(sm: async_sessionmaker[AsyncSession], request_id: str) -> list[str]:
    """The topics a breach of this request went to, one entry per record."""
    async with transaction(sm) as s:
        rows = await s.scalars(
            select(OutboxEvent.topic).where(
                OutboxEvent.key == request_id,
                OutboxEvent.event_type == "eu.caseshare.request.deadline-breached.v1",
            )
        )
        return list(rows)


async def test_an_unanswered_emergency_breaches_once_across_two_schedulers_and_a_restart(
    intake: Intake,
    sm: async_sessionmaker[AsyncSession],
    database: str,
    topic_prefix: str,
    clock: FakeClock,
) -> None:
    req = await issue(intake, await open_case(intake), "emergency_production")
    one, two = (scheduler(sm, database, topic_prefix, clock) for _ in range(2))
    clock.advance(hours=8, seconds=-1)
    await asyncio.gather(one.tick(), two.tick())
    assert await _breaches(sm, req["id"]) == []
    clock.advance(seconds=1)
    stop = asyncio.Event()
    running = [asyncio.create_task(s.run(stop)) for s in (one, two)]
    await asyncio.gather(one.tick(), two.tick())  # racing outside the leader loop too
    for _ in range(100):
        if await _breaches(sm, req["id"]):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*running)
    restarted = scheduler(sm, database, topic_prefix, clock)
    clock.advance(hours=1)
    await restarted.tick()

    breaches = sorted(t.split(".", 1)[1] for t in await _breaches(sm, req["id"]))
    # once, on each channel: the desk's, the platform's and the issuer's inbox
    assert breaches == ["inbox.FR.v1", "platform.telegram.v1", "requests.v1"]
    assert await outbox_types(sm, req["id"]) == [
        "issued",
        "deadline-reminder-due",
        "deadline-reminder-due",
        "deadline-breached",
    ]
    total = sum(
        s._metrics.deadline_breaches.labels(kind="emergency_production")._value.get()
        for s in (one, two, restarted)
    )
    assert total >= 1


async def test_a_clarification_shifts_the_deadline_by_exactly_the_paused_time(
    intake: Intake,
    sm: async_sessionmaker[AsyncSession],
    database: str,
    topic_prefix: str,
    clock: FakeClock,
) -> None:
    req = await issue(intake, await open_case(intake), "emergency_production")
    issued = datetime.fromisoformat(req["deadline_at"])
    clock.advance(hours=1)
    await platform_step(
        intake, req, "request-clarification", {"ground": "incomplete", "detail": "date range"}
    )
    clock.advance(hours=8)  # past the original deadline, while paused
    await scheduler(sm, database, topic_prefix, clock).tick()
    assert await _breaches(sm, req["id"]) == []
    clarified = await intake.client.post(
        f"/v1/requests/{req['id']}/clarify",
        json={"detail": "1-3 May"},
        headers=intake.authority("FR"),
    )
    shifted = datetime.fromisoformat(clarified.json()["deadline_at"])
    assert shifted - issued == timedelta(hours=8)
    async with transaction(sm) as s:
        expiry = await s.scalar(
            select(RequestTimer.fire_at).where(
                RequestTimer.request_id == uuid.UUID(req["id"]),
                RequestTimer.kind == "response",
                RequestTimer.point == "expiry",
            )
        )
    assert expiry == shifted
    clock.now = shifted - timedelta(seconds=1)
    await scheduler(sm, database, topic_prefix, clock).tick()
    assert await _breaches(sm, req["id"]) == []
    clock.now = shifted
    await scheduler(sm, database, topic_prefix, clock).tick()
    assert len(await _breaches(sm, req["id"])) == 3  # `requests`, platform, FR's inbox
    async with transaction(sm) as s:
        steps = await s.scalars(
            select(RequestHistory.action).where(RequestHistory.request_id == uuid.UUID(req["id"]))
        )
        assert "deadline_breached" in list(steps)
