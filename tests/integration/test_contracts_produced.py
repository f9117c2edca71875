"""The contract test: every message the hub produces, on every topic, is what we publish.

It drives the real pieces (registry use cases, fan-out, acknowledgement, reconciler, retention,
recall and deletion confirmation, outbox relay, the router's dead-letter path) against the
real database and broker under a fresh topic prefix, then reads each topic back like an
integrator and validates every record against the JSON Schemas and header rules of
`shared.contracts`.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from caseshare.stack.embedded import EmbeddedTansu, free_port
from services.registry.cases import coordination, links
from services.registry.cases import service as cases
from services.registry.cases.rules import CaseStatus, CoordinationDecision
from services.registry.context import Actor, Context
from services.registry.deliveries import service as inbox
from services.registry.deliveries.models import Delivery
from services.registry.evidence import service as evidence
from services.registry.releases import service as releases
from services.registry.releases.rules import ReleaseDecision
from services.registry.requests import clocks, steps
from services.registry.requests import service as req_service
from services.registry.requests.models import RequestTimer
from services.registry.requests.rules import (
    ClarificationGround,
    ObjectionDecision,
    RefusalGround,
    RequestType,
)
from services.registry.requests.schemas import (
    Clarification,
    ClarificationRequest,
    Objection,
    PreservationConfirmation,
    Refusal,
    Withdrawal,
)
from services.registry.requests.service import Viewer
from services.registry.responses import service as responses
from services.registry.webhooks import service as webhooks
from services.registry.webhooks.rules import RetryPolicy
from services.registry.webhooks.schemas import EndpointCreate
from services.router import fanout, publish
from services.router.consumer import ResponseConsumer
from services.router.metrics import RouterMetrics
from services.router.reconciler import Reconciler
from services.router.relay import OutboxRelay
from services.router.webhooks import WebhookDispatcher
from shared.contracts import ROUTING, asyncapi_document, validate_dead_letter, validate_record
from shared.db import transaction
from shared.events import (
    EVENT_TYPES,
    RETIRED_EVENTS,
    ResponseDelivered,
    ResponseReceived,
    topic_name,
)
from shared.kafka import encode, now
from shared.keywrap import KeyRing
from tests import factories
from tests.kafka_utils import Kafka, existing_topics, read_topic

pytestmark = pytest.mark.integration
# no wait for an acknowledgement, so the reconciler finds the unacknowledged delivery due at once
IMPATIENT = publish.Policy(timedelta(0), timedelta(0))
WEBHOOK_RING = KeyRing.generate()


def actor(code: str) -> Actor:
    return Actor(client_id=f"authority-{code.lower()}", jurisdiction=code)


async def _cases_and_a_response(sm: async_sessionmaker[AsyncSession], ctx: Context) -> uuid.UUID:
    """FR and DE share a selector (a link for each); BE closes an unrelated case."""
    group = factories.selector()
    async with transaction(sm) as s:
        fr = await cases.register(
            s, actor=actor("FR"), data=factories.case(selectors=[group]), ctx=ctx
        )
        await cases.register(s, actor=actor("DE"), data=factories.case(selectors=[group]), ctx=ctx)
        be = await cases.register(s, actor=actor("BE"), data=factories.case(), ctx=ctx)
    async with transaction(sm) as s:
        await cases.change_status(
            s,
            actor=actor("BE"),
            case_id=be.id,
            status=CaseStatus.CLOSED,
            expected_version=be.version,
            ctx=ctx,
        )
        accepted = await responses.submit(
            s,
            platform="telegram",
            client_id="platform-telegram",
            ctx=ctx,
            data=factories.response(case_ids=[fr.id], selectors=[group]),
        )
    return accepted.id


async def _requests_through_their_lives(sm: async_sessionmaker[AsyncSession], ctx: Context) -> None:
    """Every step of a legal request, each clock included, on FR's cases on telegram (BE is
    the enforcing state, so traffic orders are reviewed)."""
    fr, be = Viewer.of(actor("FR")), Viewer.of(actor("BE"))
    telegram = Viewer(client_id="platform-telegram", platform="telegram")
    at = now()
    sel = factories.selector()
    async with transaction(sm) as s:
        case = await cases.register(
            s, actor=actor("FR"), data=factories.case(selectors=[sel]), ctx=ctx
        )

    async def issue(kind: RequestType, **kw: Any) -> uuid.UUID:
        data = factories.legal_request(case.id, sel, kind, **kw)
        async with transaction(sm) as s:
            return (await req_service.issue(s, actor=actor("FR"), data=data, ctx=ctx, now=at)).id

    async def step(fn: Any, request_id: uuid.UUID, viewer: Viewer, **kw: Any) -> None:
        async with transaction(sm) as s:
            await fn(s, request_id=request_id, viewer=viewer, ctx=ctx, now=at, **kw)

    kept = await issue(RequestType.PRESERVATION)
    until = PreservationConfirmation(preserved_until=at + timedelta(days=60))
    await step(steps.confirm_preserved, kept, telegram, data=until)
    await step(steps.extend, kept, fr)
    traffic = {"categories": ["traffic"], "validated_by": "Juge d'instruction"}
    order = await issue(RequestType.PRODUCTION, follows_request_id=kept, **traffic)
    await step(steps.acknowledge, order, telegram)
    ask = ClarificationRequest(ground=ClarificationGround.INCOMPLETE, detail="dates")
    await step(steps.request_clarification, order, telegram, data=ask)
    await step(steps.clarify, order, fr, data=Clarification(detail="1-3 May"))
    await step(
        steps.object_or_clear, order, be, data=Objection(decision=ObjectionDecision.NO_GROUNDS)
    )
    disclosed = factories.disclosure(sel).model_copy(update={"category": "traffic"})
    answer = factories.response(selectors=[sel], request_id=order, disclosures=[disclosed])
    async with transaction(sm) as s:
        await responses.submit(
            s, platform="telegram", client_id="platform-telegram", data=answer, ctx=ctx
        )
    refusal = Refusal(ground=RefusalGround.FORCE_MAJEURE, detail="outage")
    await step(steps.refuse, await issue(RequestType.PRODUCTION), telegram, data=refusal)
    await step(steps.withdraw, await issue(RequestType.PRODUCTION), fr, data=Withdrawal())
    objected = await issue(RequestType.EMERGENCY_PRODUCTION, **traffic)
    grounds = Objection(decision=ObjectionDecision.OBJECT, grounds="immunity")
    await step(steps.object_or_clear, objected, be, data=grounds)
    lapsing, late = await issue(RequestType.PRESERVATION), await issue(RequestType.PRODUCTION)
    async with transaction(sm) as s:
        timers = (
            await s.execute(
                select(RequestTimer.id, RequestTimer.request_id)
                .where(RequestTimer.request_id.in_([lapsing, late]))
                .order_by(RequestTimer.fire_at)
            )
        ).all()
    for timer_id, request_id in timers:
        async with transaction(sm) as s:
            await clocks.fire_one(s, timer_id, request_id, ctx=ctx, now=at + timedelta(days=365))


async def _fan_out_acknowledge_and_fail(
    sm: async_sessionmaker[AsyncSession], ctx: Context, kafka: Kafka, response_id: uuid.UUID
) -> None:
    """FR acknowledges its delivery; DE does not, and the reconciler gives up on it."""
    producer, provisioner = kafka
    produced = await fanout.process_response(
        sm,
        producer,
        provisioner,
        response_id=response_id,
        prefix=ctx.topic_prefix,
        policy=IMPATIENT,
    )
    assert produced.produced == 2
    async with transaction(sm) as s:
        await inbox.acknowledge(
            s, actor=actor("FR"), delivery_id=fanout.delivery_id(response_id, "FR"), ctx=ctx
        )
    reconciler = Reconciler(
        sm,
        producer,
        provisioner,
        database_url="unused: the test drives single passes",
        prefix=ctx.topic_prefix,
        policy=IMPATIENT,
        max_attempts=1,
        redrive_after=timedelta(hours=1),
        replay_window=timedelta(0),
        interval=1.0,
        redrive=_no_redrive,
        metrics=RouterMetrics(),
    )
    # this step alone: a full pass would also re-drive other tests' responses and replay their
    # outbox; this one still sees every due delivery in the shared database, but only ours is
    # due this early (the other tests wait 60 s for an acknowledgement)
    await reconciler.republish_due()
    async with transaction(sm) as s:
        rows = await s.execute(
            select(Delivery.jurisdiction, Delivery.state).where(Delivery.response_id == response_id)
        )
        states = dict(rows.tuples().all())
    assert states == {"FR": "acknowledged", "DE": "failed"}


async def _webhook_endpoint(sm: async_sessionmaker[AsyncSession], ctx: Context) -> uuid.UUID:
    """FR registers a webhook endpoint where nothing listens, and an admin approves it."""
    async with transaction(sm) as s:
        created = await webhooks.register(
            s,
            actor=actor("FR"),
            data=EndpointCreate(url=f"http://127.0.0.1:{free_port()}/hook"),
            ring=WEBHOOK_RING,
            allow_insecure_loopback=True,
            prefix=ctx.topic_prefix,
        )
        await webhooks.approve(s, admin="admin", endpoint_id=created.id, prefix=ctx.topic_prefix)
    return created.id


async def _disable_and_delete_webhook_endpoint(
    sm: async_sessionmaker[AsyncSession], ctx: Context, database_url: str, endpoint_id: uuid.UUID
) -> None:
    """FR's link notice and delivery fail to reach it: disabled at once, then deleted."""
    dispatcher = WebhookDispatcher(
        sm,
        ring=WEBHOOK_RING,
        policy=RetryPolicy(disable_after_failures=1, disable_after=timedelta(0)),
        prefix=ctx.topic_prefix,
        database_url=database_url,
    )
    try:
        assert await dispatcher.dispatch_once() >= 1
    finally:
        await dispatcher.aclose()
    async with transaction(sm) as s:
        await webhooks.delete(
            s, actor=actor("FR"), endpoint_id=endpoint_id, prefix=ctx.topic_prefix
        )


async def _consented_coordination_links_and_release(
    sm: async_sessionmaker[AsyncSession], ctx: Context, kafka: Kafka
) -> None:
    """KR asks FR to coordinate and FR accepts; FR and DE consent to their link (references
    exchanged); a response requested by FR is held for DE, and FR withholds it."""
    producer, provisioner = kafka
    group = factories.selector()
    async with transaction(sm) as s:
        kr = await cases.register(
            s, actor=actor("KR"), data=factories.case(coordinating_jurisdiction="FR"), ctx=ctx
        )
        await coordination.answer(
            s,
            actor=actor("FR"),
            case_id=kr.id,
            decision=CoordinationDecision.ACCEPT,
            reason=None,
            ctx=ctx,
        )
        fr = await cases.register(
            s, actor=actor("FR"), data=factories.case(selectors=[group]), ctx=ctx
        )
        await cases.register(s, actor=actor("DE"), data=factories.case(selectors=[group]), ctx=ctx)
        for code in ("FR", "DE"):
            [link] = [
                link
                for link in await links.list_for(s, jurisdiction=code)
                if link.found_at >= fr.created_at
            ]
            await links.consent(s, actor=actor(code), link_id=link.id, ctx=ctx)
        accepted = await responses.submit(
            s,
            platform="telegram",
            client_id="platform-telegram",
            ctx=ctx,
            data=factories.response(case_ids=[fr.id], selectors=[group], requesting_case_id=fr.id),
        )
    await fanout.process_response(
        sm,
        producer,
        provisioner,
        response_id=accepted.id,
        prefix=ctx.topic_prefix,
        policy=IMPATIENT,
    )
    async with transaction(sm) as s:
        items, _ = await releases.list_for(s, originator="FR", limit=100)
        [held] = [r for r in items if r.response_id == accepted.id]
        await releases.decide(
            s,
            actor=actor("FR"),
            release_id=held.id,
            decision=ReleaseDecision.WITHHOLD,
            reason="contract test",
            ctx=ctx,
        )


async def _end_of_life(
    sm: async_sessionmaker[AsyncSession], ctx: Context, response_id: uuid.UUID
) -> None:
    """FR's payload passes retention, the platform recalls, FR is reminded and confirms."""
    fr = fanout.delivery_id(response_id, "FR")
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)  # only this delivery is that old
    async with transaction(sm) as s:
        await s.execute(update(Delivery).where(Delivery.id == fr).values(acknowledged_at=long_ago))
        assert (
            await evidence.expire_payloads(
                s, before=long_ago + timedelta(days=1), prefix=ctx.topic_prefix
            )
            == 1
        )
    async with transaction(sm) as s:
        who = evidence.Recaller(client_id="platform-telegram", platform="telegram")
        await evidence.recall(s, response_id=response_id, who=who, reason="in error", ctx=ctx)
    async with transaction(sm) as s:
        later = datetime.now(UTC) + timedelta(days=2)
        assert await evidence.remind(s, now=later, every=timedelta(days=1), prefix=ctx.topic_prefix)
        await evidence.confirm_deletion(s, actor=actor("FR"), delivery_id=fr, ctx=ctx)


async def _no_redrive(response_id: uuid.UUID) -> int:
    raise AssertionError(f"unexpected re-drive of {response_id}")


async def _publish_outbox(sm: async_sessionmaker[AsyncSession], kafka: Kafka) -> None:
    """Everything unpublished, this test's and any other test's (their topics are not read)."""
    relay = OutboxRelay(sm, *kafka, database_url="unused: no relay loop here", batch=500)
    while await relay.publish_batch():
        pass


async def _dead_letter_a_poison_record(
    ctx: Context, kafka: Kafka, bootstrap: str
) -> ConsumerRecord[bytes, bytes]:
    """A record with a valid envelope and a broken value, through the router's DLQ path."""
    producer, provisioner = kafka
    source = f"{ctx.topic_prefix}-poison"  # outside the prefix's namespace: not a contract topic
    envelope = ResponseReceived(
        response_id=uuid.uuid4(),
        platform="telegram",
        handling_code="H0",
        emergency=False,
        received_at=now(),
    )
    _, headers = encode(envelope, ce_id=uuid.uuid4(), subject=str(envelope.response_id))
    await provisioner.ensure({source})
    await (await producer.send(source, b"{not json", key=b"k", headers=headers))
    [poison] = await read_topic(bootstrap, source, expect=1)
    consumer = ResponseConsumer(
        None,  # _handle never touches the Kafka consumer
        producer,
        provisioner,
        handler=_never_called,
        dlq_topic=topic_name(ctx.topic_prefix, "dlq"),
        metrics=RouterMetrics(),
    )
    assert await consumer._handle(poison, asyncio.Event())
    return poison


async def _never_called(envelope: Any) -> None:
    raise AssertionError(f"a poison record reached the handler: {envelope}")


async def _records_by_topic(
    bootstrap: str, prefix: str
) -> dict[str, list[ConsumerRecord[bytes, bytes]]]:
    topics = sorted(t for t in await existing_topics(bootstrap) if t.startswith(prefix + "."))
    return {t: await read_topic(bootstrap, t, settle=0.3) for t in topics}


def _channel_patterns(prefix: str) -> dict[str, re.Pattern[str]]:
    """Each channel of the AsyncAPI document as a regex over topic names."""
    channels = asyncapi_document(prefix)["channels"]
    return {
        name: re.compile(
            re.escape(c["address"])
            .replace(re.escape("{jurisdiction}"), "(?P<code>[A-Z]{2})")
            .replace(re.escape("{platform}"), "(?P<platform>[a-z0-9-]+)")
            + "$"
        )
        for name, c in channels.items()
    }


def _check(
    topic: str, channel: str, match: re.Match[str], record: ConsumerRecord[bytes, bytes]
) -> str:
    """Validate one record; returns its ce_type."""
    validate_record(record.value, record.headers, key=record.key)
    headers = {k: v.decode() for k, v in record.headers}
    ce_type: str = headers["ce_type"]
    model = EVENT_TYPES[ce_type]
    assert channel in model.channels(), f"{ce_type} on {topic}"
    payload = orjson.loads(record.value or b"")
    code, platform = match.groupdict().get("code"), match.groupdict().get("platform")
    if platform is not None:
        assert payload["platform"] == platform, f"{ce_type} for {payload['platform']} on {topic}"
    if code is not None:
        assert payload["jurisdiction"] == code, (
            f"{ce_type} for {payload['jurisdiction']} on {topic}"
        )
    if model is ResponseDelivered:
        assert headers["ce_id"] == payload["delivery_id"], "exactly-once is by delivery id"
    assert record.key == str(payload[ROUTING[ce_type].key]).encode()
    return ce_type


async def test_every_event_on_every_topic_honours_its_contract(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    kafka: Kafka,
    broker: EmbeddedTansu,
    database_url: str,
) -> None:
    hook = await _webhook_endpoint(sessionmaker, ctx)
    response_id = await _cases_and_a_response(sessionmaker, ctx)
    await _fan_out_acknowledge_and_fail(sessionmaker, ctx, kafka, response_id)
    await _disable_and_delete_webhook_endpoint(sessionmaker, ctx, database_url, hook)
    await _requests_through_their_lives(sessionmaker, ctx)
    await _consented_coordination_links_and_release(sessionmaker, ctx, kafka)
    await _end_of_life(sessionmaker, ctx, response_id)
    await _publish_outbox(sessionmaker, kafka)
    poison = await _dead_letter_a_poison_record(ctx, kafka, broker.bootstrap)

    seen: dict[str, int] = {}
    patterns = _channel_patterns(ctx.topic_prefix)
    for topic, records in (await _records_by_topic(broker.bootstrap, ctx.topic_prefix)).items():
        matches = {name: p.match(topic) for name, p in patterns.items()}
        [(channel, match)] = [(n, m) for n, m in matches.items() if m]
        if channel == "dlq":
            [dead] = records
            validate_dead_letter(dead.headers)
            dlq = {k: v.decode() for k, v in dead.headers}
            assert (dlq["dlq_topic"], dlq["dlq_offset"]) == (poison.topic, str(poison.offset))
            assert (dead.value, dead.key) == (poison.value, poison.key)
            continue
        for record in records:
            ce_type = _check(topic, channel, match, record)
            seen[ce_type] = seen.get(ce_type, 0) + 1

    emitted = set(EVENT_TYPES) - {model.TYPE for model in RETIRED_EVENTS}
    assert set(seen) == emitted, (
        f"never produced: {emitted - set(seen)}; retired: {set(seen) - emitted}"
    )
    assert seen["eu.caseshare.case.link-found.v2"] == 4
    assert seen["eu.caseshare.case.link-disclosed.v1"] == 2
    assert seen["eu.caseshare.response.delivered.v1"] == 3
