"""Webhook dispatch against the real database, broker and loopback receivers: every inbox
event reaches each approved endpoint exactly once by id, signed per Standard Webhooks, across
an outage (the receiver really refuses connections; the 30 s pass on an injected clock); a
receiver that fails and recovers gets everything; one that keeps failing is disabled with an
alert; a pending endpoint gets nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from caseshare.stack.embedded import EmbeddedTansu
from services.registry.audit.models import AuditEntry, QueuedAuditEntry
from services.registry.cases import service as cases
from services.registry.context import Actor, Context
from services.registry.responses import service as responses
from services.registry.store import outbox
from services.registry.store.models import OutboxEvent
from services.registry.webhooks import repository
from services.registry.webhooks import service as webhooks
from services.registry.webhooks.models import WebhookEndpoint, WebhookMessage
from services.registry.webhooks.rules import EndpointState, RetryPolicy
from services.registry.webhooks.schemas import EndpointCreate
from services.router import fanout, publish
from services.router.metrics import RouterMetrics
from services.router.relay import asyncpg_dsn
from services.router.webhooks import CHANNEL, WebhookDispatcher
from shared.db import transaction
from shared.events import CaseLinkFound, ResponseDelivered, WebhookEndpointDisabled
from shared.kafka import TopicProvisioner
from shared.keywrap import KeyRing
from tests import factories, kafka_utils
from tests.webhook_receiver import Receiver, delete_every_endpoint

pytestmark = pytest.mark.integration
RING = KeyRing.generate()
POLICY = RetryPolicy(base=timedelta(seconds=1), cap=timedelta(seconds=8), max_attempts=50)


@dataclass
class Clock:
    """The dispatcher's time, moved by the test."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def kafka(broker: EmbeddedTansu) -> AsyncIterator[kafka_utils.Kafka]:
    """One partition a topic, as these tests have always run."""
    async with kafka_utils.producing(broker.bootstrap, partitions=1) as started:
        yield started


@pytest.fixture
async def cleanup(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    """Endpoints are committed: delete them after the test, so no later test's events queue."""
    await delete_every_endpoint(sessionmaker)  # and what another module left behind
    yield
    await delete_every_endpoint(sessionmaker)


async def endpoint(
    sm: async_sessionmaker[AsyncSession], ctx: Context, code: str, url: str, *, approve: bool
) -> tuple[uuid.UUID, str]:
    """Register (and approve) an endpoint as its authority would; returns its id and secret."""
    async with transaction(sm) as s:
        created = await webhooks.register(
            s,
            actor=Actor(f"authority-{code.lower()}", code),
            data=EndpointCreate(url=url),
            ring=RING,
            allow_insecure_loopback=True,
            prefix=ctx.topic_prefix,
        )
        if approve:
            await webhooks.approve(
                s, admin="admin", endpoint_id=created.id, prefix=ctx.topic_prefix
            )
    return created.id, created.secret


def dispatcher(
    sm: async_sessionmaker[AsyncSession],
    ctx: Context,
    database_url: str,
    clock: Clock,
    *,
    policy: RetryPolicy = POLICY,
    metrics: RouterMetrics | None = None,
) -> WebhookDispatcher:
    return WebhookDispatcher(
        sm,
        ring=RING,
        policy=policy,
        prefix=ctx.topic_prefix,
        database_url=database_url,
        timeout=2.0,
        clock=clock,
        on_states=metrics.set_webhook_endpoints if metrics else None,
    )


def link_notice(code: str) -> CaseLinkFound:
    """A link notice for `code`'s inbox topic, as case registration queues one."""
    return CaseLinkFound(
        link_id=uuid.uuid4(),
        jurisdiction=code,
        other_jurisdiction="FR",
        platform="telegram",
        found_at=datetime.now(UTC),
    )


async def audited(s: AsyncSession, action: str, subject: uuid.UUID) -> bool:
    """Whether an audit entry for `action` on `subject` exists, chained or still queued."""
    for table in (QueuedAuditEntry, AuditEntry):
        found = await s.scalar(
            select(table.subject_id).where(table.action == action, table.subject_id == str(subject))
        )
        if found is not None:
            return True
    return False


def verified(receiver: Receiver, secret: str) -> dict[str, dict[str, object]]:
    """Each accepted message by webhook-id, after checking every call's signature; fails if
    an id was accepted twice."""
    signer = Webhook(secret)
    for call in receiver.received:
        signer.verify(call.body, call.headers)
    accepted = receiver.accepted()
    ids = [c.webhook_id for c in accepted]
    assert len(ids) == len(set(ids)), "a message was accepted twice"
    return {c.webhook_id: orjson.loads(c.body) for c in accepted}


async def test_every_event_arrives_once_by_id_across_an_outage_and_a_failing_receiver(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    kafka: tuple[AIOKafkaProducer, TopicProvisioner],
    database_url: str,
    cleanup: None,
) -> None:
    producer, provisioner = kafka
    down = Receiver()  # FR's: refuses connections for the first 30 s
    flaky = Receiver(fail_first=[500, 503, 502])  # DE's: fails three calls, then recovers
    pending = Receiver()  # BE's: registered, never approved
    await flaky.start()
    await pending.start()
    fr_id, fr_secret = await endpoint(sessionmaker, ctx, "FR", down.url, approve=True)
    de_id, de_secret = await endpoint(sessionmaker, ctx, "DE", flaky.url, approve=True)
    be_id, _ = await endpoint(sessionmaker, ctx, "BE", pending.url, approve=False)

    # FR and DE open cases on one group (a link notice each), BE on another; Telegram answers
    # both groups: one delivery each to FR, DE and BE
    shared_group, be_group = factories.selector(), factories.selector()
    async with transaction(sessionmaker) as s:
        opened = [
            await cases.register(
                s,
                actor=Actor(f"authority-{c.lower()}", c),
                data=factories.case(selectors=[sel]),
                ctx=ctx,
            )
            for c, sel in (("FR", shared_group), ("DE", shared_group), ("BE", be_group))
        ]
        accepted = await responses.submit(
            s,
            platform="telegram",
            client_id="platform-telegram",
            ctx=ctx,
            data=factories.response(
                case_ids=[c.id for c in opened],
                # one disclosure per group: minimisation gives each case's opener its own
                disclosures=[factories.disclosure(shared_group), factories.disclosure(be_group)],
            ),
        )
    await fanout.process_response(
        sessionmaker,
        producer,
        provisioner,
        response_id=accepted.id,
        prefix=ctx.topic_prefix,
        policy=publish.Policy(timedelta(hours=1), timedelta(hours=1)),
    )
    # the reconciler re-publishes a delivery under the same id: still one message
    await _republish_fr_delivery(sessionmaker, ctx, accepted.id, producer, provisioner)

    clock = Clock(datetime.now(UTC) + timedelta(seconds=1))
    hub = dispatcher(sessionmaker, ctx, database_url, clock)
    try:
        for second in range(60):
            if second == 30:
                await down.start()  # the outage ends, on the same port
            await hub.dispatch_once()
            clock.advance(1)
    finally:
        await hub.aclose()
        await down.stop()
        await flaky.stop()
        await pending.stop()

    fr_delivery = fanout.delivery_id(accepted.id, "FR")
    de_delivery = fanout.delivery_id(accepted.id, "DE")
    fr = verified(down, fr_secret)
    de = verified(flaky, de_secret)
    assert {orjson.loads(c.body)["type"] for c in down.received} == {
        ResponseDelivered.TYPE,
        CaseLinkFound.TYPE,
    }
    assert len(fr) == len(de) == 2  # one delivery and one link notice each, exactly once
    for got, delivery, code in ((fr, fr_delivery, "FR"), (de, de_delivery, "DE")):
        body = got[str(delivery)]
        assert body["type"] == ResponseDelivered.TYPE
        data = body["data"]
        assert isinstance(data, dict)
        assert (data["delivery_id"], data["jurisdiction"]) == (str(delivery), code)
        assert str(data["sealed_disclosures"]).count(".") == 4  # the JWE, as on the inbox topic
        [link] = [b for i, b in got.items() if i != str(delivery)]
        assert link["type"] == CaseLinkFound.TYPE
    assert [c.status for c in flaky.received[:3]] == [500, 503, 502]
    assert pending.received == []

    async with transaction(sessionmaker) as s:
        log = [a for a, _, _ in await repository.attempts_of(s, fr_id)]
        assert {a.error_class for a in log if a.status_code is None} == {"ConnectError"}
        assert sum(a.status_code == 204 for a in log) == 2
        assert max(a.attempted_at for a in log if a.status_code is None) - clock.now < timedelta(0)
        de_log = await webhooks.attempts(s, endpoint_id=de_id, jurisdiction="DE", limit=100)
        assert {a.status_code for a in de_log} >= {500, 503, 204}
        assert de_log[0].attempted_at >= de_log[-1].attempted_at  # newest first
        assert {a.message_id for a in de_log} == {uuid.UUID(i) for i in de}
        states = {e.id: e.state for e in await s.scalars(select(WebhookEndpoint))}
        assert states[fr_id] == states[de_id] == EndpointState.ACTIVE  # an outage is not death
        queued = await s.scalar(select(WebhookMessage).where(WebhookMessage.endpoint_id == be_id))
        assert queued is None


async def _republish_fr_delivery(
    sm: async_sessionmaker[AsyncSession],
    ctx: Context,
    response_id: uuid.UUID,
    producer: AIOKafkaProducer,
    provisioner: TopicProvisioner,
) -> None:
    async with transaction(sm) as s:
        records = await publish.load_outgoing(
            s, prefix=ctx.topic_prefix, delivery_ids=[fanout.delivery_id(response_id, "FR")]
        )
    await publish.produce(producer, provisioner, records)
    async with transaction(sm) as s:
        await publish.mark_published(
            s,
            records=records,
            policy=publish.Policy(timedelta(hours=1), timedelta(hours=1)),
            prefix=ctx.topic_prefix,
        )


async def test_an_endpoint_that_keeps_failing_is_disabled_then_approved_again(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    database_url: str,
    cleanup: None,
) -> None:
    receiver = Receiver(fail_first=[500] * 3)
    await receiver.start()
    endpoint_id, secret = await endpoint(sessionmaker, ctx, "NL", receiver.url, approve=True)
    async with transaction(sessionmaker) as s:
        notice = link_notice("NL")
        row = outbox.add(
            s, notice, key="k", subject=None, prefix=ctx.topic_prefix, jurisdiction="NL"
        )
    metrics = RouterMetrics()
    clock = Clock(datetime.now(UTC) + timedelta(seconds=1))
    policy = RetryPolicy(
        base=timedelta(seconds=1),
        cap=timedelta(seconds=2),
        disable_after_failures=3,
        disable_after=timedelta(seconds=2),
    )
    hub = dispatcher(sessionmaker, ctx, database_url, clock, policy=policy, metrics=metrics)
    try:
        for _ in range(6):
            await hub.dispatch_once()
            clock.advance(2)
        assert len(receiver.received) == 3  # disabled after the third failure: no more calls
        async with transaction(sessionmaker) as s:
            e = await s.get(WebhookEndpoint, endpoint_id)
            assert e is not None
            assert (e.state, e.consecutive_failures) == (EndpointState.DISABLED, 3)
            alert = await s.scalar(
                select(OutboxEvent).where(
                    OutboxEvent.event_type == WebhookEndpointDisabled.TYPE,
                    OutboxEvent.key == str(endpoint_id),
                )
            )
            assert alert is not None
            assert alert.payload["consecutive_failures"] == 3
            assert await audited(s, "webhook.disabled", endpoint_id)
        disabled = metrics.registry.get_sample_value(
            "caseshare_webhook_endpoints", {"state": "disabled"}
        )
        assert disabled is not None
        assert disabled >= 1

        async with transaction(sessionmaker) as s:
            await webhooks.approve(
                s, admin="admin", endpoint_id=endpoint_id, prefix=ctx.topic_prefix
            )
        await hub.dispatch_once()
    finally:
        await hub.aclose()
        await receiver.stop()
    got = verified(receiver, secret)
    assert list(got) == [str(row.event_id)]


async def test_the_leader_loop_sends_as_soon_as_the_event_commits(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    database_url: str,
    cleanup: None,
) -> None:
    receiver = Receiver()
    await receiver.start()
    _, secret = await endpoint(sessionmaker, ctx, "IE", receiver.url, approve=True)
    metrics = RouterMetrics()
    hub = WebhookDispatcher(
        sessionmaker,
        ring=RING,
        policy=POLICY,
        prefix=ctx.topic_prefix,
        database_url=database_url,
        poll=30,  # only the outbox's NOTIFY can wake it in time
        on_states=metrics.set_webhook_endpoints,
    )
    stop = asyncio.Event()
    loop = asyncio.create_task(hub.run(stop))
    try:
        await asyncio.sleep(0.3)  # let it take the lock and listen
        async with transaction(sessionmaker) as s:
            row = outbox.add(
                s,
                link_notice("IE"),
                key="k",
                subject=None,
                prefix=ctx.topic_prefix,
                jurisdiction="IE",
            )
        await asyncio.wait_for(receiver.arrived.wait(), 10)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 10)
        await hub.aclose()
        await receiver.stop()
    assert list(verified(receiver, secret)) == [str(row.event_id)]
    active = metrics.registry.get_sample_value("caseshare_webhook_endpoints", {"state": "active"})
    assert active is not None
    assert active >= 1


async def test_settled_messages_and_their_log_are_forgotten_after_the_retention(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    database_url: str,
    cleanup: None,
) -> None:
    up, down = Receiver(), Receiver()
    await up.start()
    up_id, _ = await endpoint(sessionmaker, ctx, "AT", up.url, approve=True)
    down_id, _ = await endpoint(sessionmaker, ctx, "AT", down.url, approve=True)
    async with transaction(sessionmaker) as s:
        outbox.add(
            s, link_notice("AT"), key="k", subject=None, prefix=ctx.topic_prefix, jurisdiction="AT"
        )
    clock = Clock(datetime.now(UTC) + timedelta(seconds=1))
    hub = dispatcher(sessionmaker, ctx, database_url, clock)
    try:
        await hub.dispatch_once()  # delivered to `up`; `down` refuses and stays pending
        assert await hub.prune_log() == 0  # nothing is old yet
        clock.advance(timedelta(days=31).total_seconds())
        assert await hub.prune_log() >= 1
    finally:
        await hub.aclose()
        await up.stop()
    async with transaction(sessionmaker) as s:
        left = {
            m.endpoint_id: m.state
            for m in await s.scalars(
                select(WebhookMessage).where(WebhookMessage.endpoint_id.in_([up_id, down_id]))
            )
        }
        assert left == {down_id: "pending"}  # still owed: never forgotten
        assert await repository.attempts_of(s, up_id) == []
        assert len(await repository.attempts_of(s, down_id)) == 1


async def test_a_secret_no_key_opens_fails_its_calls_and_not_the_others(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    database_url: str,
    cleanup: None,
) -> None:
    good, lost = Receiver(), Receiver()
    await good.start()
    await lost.start()
    _, secret = await endpoint(sessionmaker, ctx, "LU", good.url, approve=True)
    lost_id, _ = await endpoint(sessionmaker, ctx, "LU", lost.url, approve=True)
    async with transaction(sessionmaker) as s:
        e = await s.get(WebhookEndpoint, lost_id)
        assert e is not None
        e.sealed_secret = KeyRing.generate().seal(b"whsec_x", context=f"webhook-endpoint:{e.id}")
        notice = link_notice("LU")
        outbox.add(s, notice, key="k", subject=None, prefix=ctx.topic_prefix, jurisdiction="LU")
    hub = dispatcher(
        sessionmaker, ctx, database_url, Clock(datetime.now(UTC) + timedelta(seconds=1))
    )
    try:
        await hub.dispatch_once()
    finally:
        await hub.aclose()
        await good.stop()
        await lost.stop()
    assert len(verified(good, secret)) == 1
    assert lost.received == []  # never called unsigned
    async with transaction(sessionmaker) as s:
        [(attempt, _, _)] = await repository.attempts_of(s, lost_id)
        assert (attempt.status_code, attempt.error_class) == (None, "SealError")


async def test_only_a_queued_message_wakes_the_dispatcher(
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
    database_url: str,
    cleanup: None,
) -> None:
    """Outbox events nobody has an endpoint for leave the dispatcher asleep (it used to wake on
    every outbox commit); an event for an approved endpoint wakes it."""
    receiver = Receiver()
    await endpoint(sessionmaker, ctx, "IE", receiver.url, approve=True)
    listener = await asyncpg.connect(asyncpg_dsn(database_url))
    woken: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(CHANNEL, lambda *args: woken.put_nowait(args[2]))
    try:
        async with transaction(sessionmaker) as s:
            outbox.add(
                s,
                link_notice("MT"),
                key="k",
                subject=None,
                prefix=ctx.topic_prefix,
                jurisdiction="MT",
            )
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(woken.get(), 0.5)
        async with transaction(sessionmaker) as s:
            outbox.add(
                s,
                link_notice("IE"),
                key="k",
                subject=None,
                prefix=ctx.topic_prefix,
                jurisdiction="IE",
            )
        assert await asyncio.wait_for(woken.get(), 5) == CHANNEL
    finally:
        await listener.close()
