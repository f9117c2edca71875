"""Prometheus metrics every HTTP service exports the same way: requests by route template and
status with latency histograms, the database pool, and gauges read from the database.

Each app owns a `CollectorRegistry` (no process-global state, so tests build as many apps as
they like). Route labels are templates (`/v1/cases/{case_id}`), never raw paths, so ids neither
explode the series count nor leak into the monitoring system. Gauges that need a query are
sampled when Prometheus scrapes, at most once per `ttl` however many scrapers ask at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client import Histogram as PromHistogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import transaction

logger = logging.getLogger(__name__)

UNMATCHED = "unmatched"  # a path no route knows: one label, whatever was asked
Sampler = Callable[[AsyncSession], Awaitable[list[Metric]]]


@dataclass
class ServiceMetrics:
    """The metrics one service's app exports, on a registry of its own."""

    service: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "caseshare_http_requests",
            "HTTP requests answered",
            ["service", "route", "method", "status"],
            registry=r,
        )
        self.latency = PromHistogram(
            "caseshare_http_request_duration_seconds",
            "HTTP request latency, until the response is complete",
            ["service", "route", "method"],
            registry=r,
        )


class HttpMetrics:
    """Counts and times every request by route template, method and status (plain ASGI, as
    `RequestContext`, so it costs no task group per request)."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the response started is answered with a 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"]
            m = self.metrics
            m.requests.labels(m.service, route, method, str(status)).inc()
            m.latency.labels(m.service, route, method).observe(time.perf_counter() - started)


class PoolCollector(Collector):
    """`caseshare_db_pool_connections{state}` and `caseshare_db_pool_size`, read from the
    pool's own counters at scrape time (no query)."""

    def __init__(self, service: str, engine: Callable[[], AsyncEngine | None]) -> None:
        self.service, self.engine = service, engine

    def collect(self) -> Iterable[Metric]:
        engine = self.engine()
        if engine is None:  # before the lifespan built it, or after it was disposed
            return []
        pool = engine.sync_engine.pool
        in_use, idle = pool.checkedout(), pool.checkedin()  # type: ignore[attr-defined]
        connections = GaugeMetricFamily(
            "caseshare_db_pool_connections",
            "Connections of the process's pool",
            labels=["service", "state"],
        )
        connections.add_metric([self.service, "in_use"], in_use)
        connections.add_metric([self.service, "idle"], idle)
        size = GaugeMetricFamily(
            "caseshare_db_pool_size", "The pool's configured size", labels=["service"]
        )
        size.add_metric([self.service], pool.size())  # type: ignore[attr-defined]
        return [connections, size]


class DatabaseGauges(Collector):
    """Gauges that take a query, refreshed on scrape but at most once per `ttl` seconds: a
    storm of scrapes (several Prometheus servers, a dashboard reload) runs one set of queries.
    A failed refresh drops the gauges rather than repeat stale values: a missing series is
    visible, a frozen one is not."""

    def __init__(
        self,
        samplers: Sequence[Sampler],
        *,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._samplers, self._ttl, self._clock = samplers, ttl, clock
        self._families: list[Metric] = []
        self._sampled_at: float | None = None
        self._lock = asyncio.Lock()

    def describe(self) -> Iterable[Metric]:
        return []  # known only after the first query; nothing to check for duplicates

    def collect(self) -> Iterable[Metric]:
        return list(self._families)

    async def refresh(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        async with self._lock:
            now = self._clock()
            if self._sampled_at is not None and now - self._sampled_at < self._ttl:
                return
            self._sampled_at = now
            try:
                async with transaction(sessionmaker) as session:
                    families = [f for sample in self._samplers for f in await sample(session)]
            except Exception as exc:  # a scrape must answer whatever the database does
                logger.warning("metrics query failed", extra={"error": type(exc).__name__})
                self._families = []
                return
            self._families = families


def install(
    app: FastAPI,
    metrics: ServiceMetrics,
    *,
    engine: Callable[[], AsyncEngine | None],
    sessionmaker: Callable[[], async_sessionmaker[AsyncSession] | None] = lambda: None,
    samplers: Sequence[Sampler] = (),
) -> None:
    """The request middleware (outermost, so refused and failed requests count too), the pool
    collector, the database gauges, and `GET /metrics`."""
    app.add_middleware(HttpMetrics, metrics=metrics)
    metrics.registry.register(PoolCollector(metrics.service, engine))
    gauges = DatabaseGauges(samplers) if samplers else None
    if gauges is not None:
        metrics.registry.register(gauges)

    @app.get("/metrics", include_in_schema=False)
    async def export() -> Response:
        sm = sessionmaker()
        if gauges is not None and sm is not None:
            await gauges.refresh(sm)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
