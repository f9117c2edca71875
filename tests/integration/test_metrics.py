"""`/metrics` answers on intake, registry and router (the real apps, lifespans run), with the
series the alert rules and the dashboard use; labels are route templates, never raw paths."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from caseshare.stack.embedded import EmbeddedPostgres, EmbeddedTansu
from services.registry.audit import service as audit
from services.registry.deliveries.rules import DeliveryState
from services.registry.webhooks.rules import EndpointState
from services.router.app import create_app as create_router
from services.router.settings import RouterSettings
from shared.db import create_sessionmaker, transaction
from shared.metrics import DatabaseGauges
from tests import databases, intake_api, registry_api

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parents[2] / "deploy" / "README.md"

HTTP = ("caseshare_http_requests_total", "caseshare_http_request_duration_seconds_bucket")
POOL = ("caseshare_db_pool_connections", "caseshare_db_pool_size")
REMINDERS = "caseshare_deadline_reminders_total"
Samples = dict[str, list[tuple[dict[str, str], float]]]


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.setdefault(s.name, []).append((s.labels, s.value))
    return found


async def scrape(client: httpx.AsyncClient) -> tuple[str, Samples]:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text, samples(answer.text)


def documented(service: str) -> set[str]:
    """The metrics deploy/README.md says `service` exports (the planned ones aside)."""
    text = README.read_text()
    section = text[text.index("## Metrics") : text.index("## Tracing")]
    rows = re.findall(r"^\| `(caseshare_[a-z0-9_]+)` \|.*\| ([^|]+) \|$", section, re.MULTILINE)
    return {name for name, by in rows if service in by and not by.strip().startswith("planned")}


def undocumented_missing(service: str, found: Samples) -> set[str]:
    """Documented for `service` but absent from its scrape (a histogram counts by its buckets)."""
    return {n for n in documented(service) if n not in found and f"{n}_bucket" not in found}


def count(found: Samples, name: str, **labels: str) -> float:
    return sum(v for lbl, v in found.get(name, []) if labels.items() <= lbl.items())


async def test_intake_counts_requests_by_route_template(
    database_url: str, engine: AsyncEngine, topic_prefix: str
) -> None:
    settings = intake_api.settings_for(database_url, topic_prefix)
    async with intake_api.running(settings) as intake:
        case_id = uuid.uuid4()
        missing = await intake.client.get(f"/v1/cases/{case_id}", headers=intake.authority("FR"))
        assert missing.status_code == 404
        await intake.client.get(f"/no/such/{case_id}")
        text, found = await scrape(intake.client)
    assert str(case_id) not in text
    assert documented("intake")
    assert undocumented_missing("intake", found) == set()
    route = {"service": "intake", "route": "/v1/cases/{case_id}", "method": "GET"}
    assert count(found, "caseshare_http_requests_total", **route, status="404") == 1
    assert count(found, "caseshare_http_request_duration_seconds_count", **route) == 1
    assert count(found, "caseshare_http_requests_total", route="unmatched", status="404") == 1
    assert count(found, "caseshare_db_pool_size", service="intake") == settings.database_pool_size
    assert {lbl["state"] for lbl, _ in found["caseshare_db_pool_connections"]} == {
        "in_use",
        "idle",
    }


async def test_registry_exports_the_audit_queue_sequencer_and_deliveries(
    postgres: EmbeddedPostgres,
) -> None:
    # a database of its own: on the shared one, another registry's sequencer (the session's
    # API apps run one) may chain the entry first, and this one's counter would stay at 0
    url = await databases.migrated(postgres)
    settings = registry_api.settings_for(url, "metrics")
    async with databases.engine_for(url) as engine, registry_api.running(settings) as registry:
        async with transaction(create_sessionmaker(engine)) as session:
            await audit.append(
                session,
                actor="metrics-test",
                action="test.queued",
                subject_type="test",
                subject_id=str(uuid.uuid4()),
            )
        async with asyncio.timeout(10):  # the sequencer chains it within a pass or two
            await chained(registry.client)
        _, found = await scrape(registry.client)  # the scrapes before are counted by now
    for name in (*HTTP, *POOL, "caseshare_audit_queue_depth"):
        assert name in found, name
    assert undocumented_missing("registry", found) == set()
    assert found["caseshare_audit_queue_oldest_age_seconds"][0][1] >= 0
    states = {lbl["state"] for lbl, _ in found["caseshare_deliveries"]}
    assert states == {s.value for s in DeliveryState}


async def chained(client: httpx.AsyncClient) -> None:
    """Scrape until the sequencer has chained something (it runs every 0.2 s)."""
    while True:
        _, found = await scrape(client)
        if count(found, "caseshare_audit_chained_total"):
            return
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running_router(settings: RouterSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_router(settings)
    transport = httpx.ASGITransport(app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://router.test") as client,
    ):
        yield client


async def test_router_exports_outbox_backlog_and_consumer_lag(
    postgres: EmbeddedPostgres, broker: EmbeddedTansu, topic_prefix: str, tmp_path: Path
) -> None:
    url = await databases.migrated(postgres)  # its reconciler and relay own this database
    settings = RouterSettings.model_validate(
        {
            "DATABASE_URL": url,
            "DATABASE_POOL_SIZE": 2,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "KAFKA_TOPIC_PREFIX": topic_prefix,
            "KAFKA_PARTITIONS": 1,
            "ROUTER_GROUP_ID": f"router-{topic_prefix}",
        }
    )
    async with running_router(settings) as client:
        assert (await client.get("/healthz")).status_code == 200
        _, found = await scrape(client)
    for name in (*HTTP, *POOL, "caseshare_router_lag", "caseshare_router_consumed_total"):
        assert name in found, name
    assert undocumented_missing("router", found) == set()
    assert count(found, "caseshare_http_requests_total", service="router", route="/healthz") == 1
    assert found["caseshare_outbox_backlog"][0][1] >= 0
    assert found["caseshare_outbox_oldest_unpublished_age_seconds"][0][1] >= 0
    # every labelled series is there at 0 before anything happened, so increase() sees the first
    breaches = found["caseshare_deadline_breaches_total"]
    assert {lbl["kind"] for lbl, _ in breaches} == {"production", "emergency_production"}
    reminders = {(lbl["kind"], lbl["threshold"]) for lbl, _ in found[REMINDERS]}
    assert len(reminders) == 4 * 2
    assert {lbl["state"] for lbl, _ in found["caseshare_webhook_endpoints"]} == {
        s.value for s in EndpointState
    }


async def test_database_gauges_query_once_per_ttl_however_often_scraped(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    now = [100.0]
    queries = 0

    async def sampler(session: AsyncSession) -> list[object]:
        nonlocal queries
        queries += 1
        return []

    gauges = DatabaseGauges([sampler], ttl=5.0, clock=lambda: now[0])  # type: ignore[list-item]
    await asyncio.gather(*(gauges.refresh(sessionmaker) for _ in range(10)))
    assert queries == 1
    now[0] += 4.9
    await gauges.refresh(sessionmaker)
    assert queries == 1
    now[0] += 0.2
    await gauges.refresh(sessionmaker)
    assert queries == 2
