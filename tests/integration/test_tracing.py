"""One `POST /v1/responses` gives one trace: the intake request, the relay's publish of the
outbox event, the router's work on the record, and the publish to the inbox topic.

The real intake app and the router process's runtime (relay, consumer, fan-out, reconciler) run
in this process against their own database and the embedded broker, with tracing configured as
the entry points configure it but exporting to memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from caseshare.stack.embedded import EmbeddedPostgres, EmbeddedTansu
from services.registry.cases import service as cases
from services.registry.context import Actor, Context
from services.registry.reference import seed
from services.router.app import Runtime
from services.router.settings import RouterSettings
from shared import tracing
from shared.db import create_sessionmaker, transaction
from shared.events import topic_name
from shared.kafka import decode, make_consumer
from tests import databases, factories, intake_api

pytestmark = pytest.mark.integration


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    traced = tracing.configure("test", endpoint=None, exporter=exporter)
    assert traced is not None
    try:
        yield exporter
    finally:
        traced.shutdown()  # unpatches asyncpg and aiokafka for the tests that follow


async def inbox_record(bootstrap: str, topic: str) -> tuple[str, str]:
    """The first record of `topic`: its ce_type and traceparent header."""
    consumer = make_consumer(bootstrap, topic, group_id=f"{topic}.trace", client_id="trace")
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            while True:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    envelope = decode(records[0].value, records[0].headers)
                    return envelope.ce_type, envelope.headers["traceparent"]
    finally:
        await consumer.stop()


def names(found: list[ReadableSpan]) -> set[str]:
    return {s.name for s in found}


async def test_one_response_gives_one_trace_from_intake_to_the_inbox_topic(
    spans: InMemorySpanExporter,
    postgres: EmbeddedPostgres,
    broker: EmbeddedTansu,
    ctx: Context,
    tmp_path: Path,
) -> None:
    url = await databases.migrated(postgres)  # the router's relay and reconciler own it
    async with (
        databases.engine_for(url) as engine,
        transaction(create_sessionmaker(engine)) as session,
    ):
        await seed.ensure_demo_keys(session, tmp_path / "keys")
        group = factories.selector()
        fr = await cases.register(
            session,
            actor=Actor(client_id="authority-fr", jurisdiction="FR"),
            data=factories.case(selectors=[group]),
            ctx=ctx,
        )
    router = Runtime(
        RouterSettings.model_validate(
            {
                "DATABASE_URL": url,
                "DATABASE_POOL_SIZE": 2,
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                "KAFKA_TOPIC_PREFIX": ctx.topic_prefix,
                "KAFKA_PARTITIONS": 1,
                "ROUTER_GROUP_ID": f"router-{ctx.topic_prefix}",
            }
        )
    )
    await router.start()
    try:
        async with intake_api.running(intake_api.settings_for(url, ctx.topic_prefix)) as intake:
            body = factories.response(case_ids=[fr.id], selectors=[group]).model_dump(mode="json")
            answer = await intake.client.post(
                "/v1/responses", headers=intake.platform("telegram"), json=body
            )
            assert answer.status_code == 202, answer.text
        inbox = topic_name(ctx.topic_prefix, "inbox", "FR")
        ce_type, traceparent = await inbox_record(broker.bootstrap, inbox)
    finally:
        await router.close()
    assert ce_type == "eu.caseshare.response.delivered.v1"

    request = next(s for s in spans.get_finished_spans() if s.name == "POST /v1/responses")
    assert request.kind is SpanKind.SERVER
    trace_id = request.context.trace_id
    assert traceparent.split("-")[1] == f"{trace_id:032x}"  # the inbox record carries it on
    trace = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    responses = topic_name(ctx.topic_prefix, "responses")
    assert {
        "POST /v1/responses",  # intake
        "outbox publish",  # the relay, parented by the traceparent stored in the outbox
        f"{responses} send",  # the relay's produce
        "route response",  # the router, continuing from the record's header
        f"{inbox} send",  # the publish to FR's inbox topic
    } <= names(trace)
    assert "INSERT" in names(trace)  # asyncpg: the statements of the request and the fan-out
    by_id = {s.context.span_id: s for s in trace}
    publish = next(s for s in trace if s.name == f"{inbox} send")
    ancestors = []
    span: ReadableSpan | None = publish
    while span is not None and span.parent is not None:
        span = by_id.get(span.parent.span_id)
        ancestors.append(span.name if span else None)
    assert ancestors[0] == "route response"
    assert ancestors[-1] == "POST /v1/responses"  # one unbroken chain back to the request
