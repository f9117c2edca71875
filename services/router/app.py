"""The router process: consumer, outbox relay and reconciler, with health and metrics on HTTP.

The lifespan owns every client. On shutdown it stops fetching, lets in-flight work finish,
commits, and closes, within the 10 s that an orchestrator allows after SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry import gauges
from services.registry.evidence import keys as hub_keys
from services.router import fanout, publish
from services.router.consumer import ResponseConsumer
from services.router.metrics import RouterMetrics
from services.router.reconciler import Reconciler
from services.router.relay import OutboxRelay
from services.router.scheduler import Scheduler
from services.router.settings import RouterSettings
from services.router.webhooks import WebhookDispatcher
from shared import metrics as service_metrics
from shared import state as shared_state
from shared import tracing
from shared.checks import Check, broker_check, database_check
from shared.db import create_engine, create_sessionmaker, transaction
from shared.events import ResponseReceived, topic_name
from shared.kafka import Envelope, TopicProvisioner, make_consumer, make_producer
from shared.web import health_router, install_common

logger = logging.getLogger(__name__)
# SIGTERM to exit within 10 s: drain in-flight work, then close every client at once.
SHUTDOWN_BUDGET = 6.0
CLOSE_BUDGET = 2.0
# Every producer call site sends its whole batch, then waits for the acks: the records are
# batched anyway, and a linger would only add its time to every hop of a delivery.
PRODUCER_LINGER_MS = 0


@dataclass
class Runtime:
    """Everything the router runs, started and stopped together."""

    settings: RouterSettings
    metrics: RouterMetrics = field(default_factory=RouterMetrics)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    checks: dict[str, Check] = field(default_factory=dict)  # what /readyz runs, once started

    async def start(self) -> None:
        s = self.settings
        self.engine = create_engine(s.database_url, pool_size=s.database_pool_size)
        self.sm = create_sessionmaker(self.engine)
        self.producer = make_producer(s, client_id="caseshare-router", linger_ms=PRODUCER_LINGER_MS)
        # The relay's own: a producer has one produce request in flight per broker, so on one
        # producer the relay's batches and the fan-outs' waited for each other's acks.
        self.relay_producer = make_producer(
            s, client_id="caseshare-router-relay", linger_ms=PRODUCER_LINGER_MS
        )
        self.provisioner = TopicProvisioner(
            s, partitions=s.partitions, replication_factor=s.kafka_replication_factor
        )
        self.policy = publish.Policy(
            timedelta(seconds=s.ack_timeout_seconds), timedelta(seconds=s.backoff_cap_seconds)
        )
        await _retry_forever(self._load_signing_key, self.stop)
        await _retry_forever(self.provisioner.start, self.stop)
        await _retry_forever(self.producer.start, self.stop)
        await _retry_forever(self.relay_producer.start, self.stop)
        self.reconciler = Reconciler(
            self.sm,
            self.producer,
            self.provisioner,
            database_url=s.database_url,
            prefix=s.topic_prefix,
            policy=self.policy,
            max_attempts=s.max_attempts,
            redrive_after=timedelta(seconds=s.redrive_after_seconds),
            replay_window=timedelta(seconds=s.replay_window_seconds),
            interval=s.reconcile_interval_seconds,
            redrive=self.process,
            metrics=self.metrics,
            queue_busy=self.consumer_busy,
            outbox_retention=timedelta(seconds=s.outbox_retention_seconds),
            key_ttl=timedelta(seconds=s.idempotency_key_ttl_seconds),
            release_reminder=timedelta(seconds=s.release_reminder_seconds),
            payload_retention=timedelta(seconds=s.payload_retention_seconds),
            deletion_reminder=timedelta(seconds=s.deletion_reminder_seconds),
        )
        await _retry_forever(self.reconciler.provision, self.stop)
        self.consumer = make_consumer(
            s,
            topic_name(s.topic_prefix, "responses"),
            group_id=s.group_id,
            client_id="caseshare-router",
            session_timeout_ms=s.session_timeout_ms,
            fetch_max_wait_ms=s.fetch_max_wait_ms,
        )
        await _retry_forever(self.consumer.start, self.stop)
        relay = OutboxRelay(
            self.sm,
            self.relay_producer,
            self.provisioner,
            database_url=s.database_url,
            batch=s.relay_batch,
            on_published=self.metrics.relayed.inc,
        )
        self.responses = ResponseConsumer(
            self.consumer,
            self.producer,
            self.provisioner,
            handler=self.handle,
            dlq_topic=topic_name(s.topic_prefix, "dlq"),
            metrics=self.metrics,
            batch_handler=self.handle_batch,
            batch_size=s.batch_size,
            batch_deliveries=s.batch_deliveries,
        )
        for name, coro in (
            ("relay", relay.run(self.stop)),
            ("consumer", self.responses.run(self.stop)),
            ("reconciler", self.reconciler.run(self.stop)),
            ("scheduler", self._scheduler().run(self.stop)),
        ):
            self.tasks.append(asyncio.create_task(_supervised(name, coro), name=name))
        if s.webhooks_enabled:
            self.webhooks = _webhook_dispatcher(self.sm, s, self.metrics)
            self.tasks.append(
                asyncio.create_task(
                    _supervised("webhooks", self.webhooks.run(self.stop)), name="webhooks"
                )
            )

    def _scheduler(self) -> Scheduler:
        s = self.settings
        return Scheduler(
            self.sm, database_url=s.database_url, prefix=s.topic_prefix, metrics=self.metrics
        )

    async def _load_signing_key(self) -> None:
        """Open the hub's delivery signing key now (made on first start), so a KEK that cannot
        open it shows at start, not at the first delivery; fan-outs then use it cached."""
        async with transaction(self.sm) as session:
            signer = await hub_keys.active_signer(session)
        logger.info("hub signing key loaded", extra={"kid": signer.kid})

    def consumer_busy(self, within: float) -> bool:
        responses: ResponseConsumer | None = getattr(self, "responses", None)
        return responses is not None and responses.busy(within)

    async def process(self, response_id: uuid.UUID) -> int:
        return (await self.process_many([response_id])).produced

    async def process_many(self, response_ids: list[uuid.UUID]) -> fanout.FanoutResult:
        """Fan out these responses together (one transaction, one produce batch), in order."""
        result = await fanout.process_responses(
            self.sm,
            self.producer,
            self.provisioner,
            response_ids=response_ids,
            prefix=self.settings.topic_prefix,
            policy=self.policy,
            lapse_after=timedelta(seconds=self.settings.release_lapse_seconds),
        )
        self.metrics.delivered.inc(result.produced)
        self.metrics.excluded.inc(result.excluded)
        return result

    async def handle(self, envelope: Envelope) -> None:
        assert isinstance(envelope.event, ResponseReceived)
        await self.process(envelope.event.response_id)

    async def handle_batch(self, envelopes: list[Envelope]) -> int:
        """Several responses of one partition, fetched together, fanned out in offset order;
        returns the deliveries sealed, by which the consumer sizes its next batch."""
        ids = []
        for envelope in envelopes:
            assert isinstance(envelope.event, ResponseReceived)
            ids.append(envelope.event.response_id)
        return (await self.process_many(ids)).sealed

    async def close(self) -> None:
        """Stop fetching, let in-flight work finish (bounded), commit, release everything."""
        self.stop.set()
        pending: set[asyncio.Task[None]] = set()
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=SHUTDOWN_BUDGET)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        closing = [
            self.consumer.stop(),
            self.producer.stop(),
            self.relay_producer.stop(),
            self.provisioner.close(),
        ]
        if (webhooks := getattr(self, "webhooks", None)) is not None:
            closing.append(webhooks.aclose())
        results = await asyncio.gather(
            *(asyncio.wait_for(c, CLOSE_BUDGET) for c in closing), return_exceptions=True
        )
        for failure in (r for r in results if isinstance(r, BaseException)):
            logger.warning("client close failed", extra={"error": type(failure).__name__})
        await asyncio.wait_for(self.engine.dispose(), CLOSE_BUDGET)
        logger.info("router stopped", extra={"drained": not pending})


def _webhook_dispatcher(
    sm: async_sessionmaker[AsyncSession], s: RouterSettings, metrics: RouterMetrics
) -> WebhookDispatcher:
    """The dispatcher of inbox events to approved webhook endpoints (its own leader loop)."""
    return WebhookDispatcher(
        sm,
        ring=lambda: s.key_ring(s.state_dir),
        policy=s.retry_policy(),
        prefix=s.topic_prefix,
        database_url=s.database_url,
        batch=s.webhooks_batch,
        timeout=s.webhooks_timeout_seconds,
        poll=s.webhooks_poll_seconds,
        on_states=metrics.set_webhook_endpoints,
        log_retention=timedelta(seconds=s.webhooks_log_retention_seconds),
    )


async def _retry_forever(start: object, stop: asyncio.Event) -> None:
    """Dependencies may come up after us (make run starts everything at once)."""
    delay = 0.2
    while not stop.is_set():
        try:
            await start()  # type: ignore[operator]
            return
        except Exception as exc:
            logger.warning(
                "dependency not ready; retrying",
                extra={"error": type(exc).__name__, "delay": delay},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def _supervised(name: str, coro: object) -> None:
    try:
        await coro  # type: ignore[misc]
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("router task crashed", extra={"task": name})
        raise


def create_app(settings: RouterSettings) -> FastAPI:
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        runtime.checks = {
            "database": database_check(runtime.engine),
            "broker": broker_check(settings.kafka_bootstrap_servers),
        }
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(
        title="caseshare router", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    shared_state.install(app, runtime)
    install_common(app, max_body_bytes=1024)
    tracing.instrument_app(app)
    service_metrics.install(
        app,
        service_metrics.ServiceMetrics("router", registry=runtime.metrics.registry),
        engine=lambda: getattr(runtime, "engine", None),
        sessionmaker=lambda: getattr(runtime, "sm", None),
        samplers=[gauges.outbox],
    )
    app.include_router(health_router(lambda: runtime.checks))
    return app
