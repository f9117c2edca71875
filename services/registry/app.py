"""The registry process: the coordinator's read-only API and dashboard, the administrators'
API, the event contracts (AsyncAPI and JSON Schemas) for integrators, and the audit sequencer
that chains queued audit entries.

`create_app(settings, http=...)` takes an optional HTTP client for the token validator's
discovery and JWKS fetches; like a client the app makes itself, it is closed at shutdown. Tests
pass one backed by `httpx.MockTransport`, so tokens go through the real validation with no
issuer running.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from prometheus_client import Counter

from services.registry import gauges
from services.registry.audit import service as audit
from services.registry.settings import RegistrySettings
from services.registry.web import admin as routes_admin
from services.registry.web import approvals as routes_approvals
from services.registry.web import coordinator as routes_coordinator
from services.registry.web import dashboard
from services.registry.web import evidence as routes_evidence
from services.registry.web.stream import Viewers
from shared import metrics as service_metrics
from shared import tracing
from shared.auth.deps import document_token_url
from shared.auth.validation import TokenValidator
from shared.checks import broker_check, database_check
from shared.contracts import asyncapi_router
from shared.db import create_engine, create_sessionmaker
from shared.web import health_router, install_common


def create_app(settings: RegistrySettings, *, http: httpx.AsyncClient | None = None) -> FastAPI:
    """Build the app; the lifespan owns the engine and the validator's HTTP client."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
        client = http or httpx.AsyncClient(timeout=5)
        validator = TokenValidator.from_settings(settings, http=client)  # closes `client`
        dashboard.start(app, settings, http=client)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.token_validator = validator
        app.state.checks = {
            "database": database_check(engine),
            "broker": broker_check(settings.kafka_bootstrap_servers),
        }
        app.state.viewers = Viewers(
            limit=settings.stream_max_clients, per_viewer=settings.stream_max_per_client
        )
        app.state.audit_lock = asyncio.Lock()
        stop = asyncio.Event()
        sequencer = asyncio.create_task(
            audit.run_sequencer(app.state.sessionmaker, stop, on_chained=chained.inc)
        )
        try:
            yield
        finally:
            stop.set()
            await sequencer
            await validator.aclose()
            await engine.dispose()

    docs = settings.docs_enabled
    app = FastAPI(
        title="caseshare registry",
        version="1.0.0",
        summary="Coordinator view of cases and fan-out (metadata only), and reference-data admin.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    app.state.write_limiter = settings.write_limiter()
    install_common(app, max_body_bytes=settings.max_body_bytes, service="registry")
    tracing.instrument_app(app)
    metrics = service_metrics.ServiceMetrics("registry")
    chained = Counter(
        "caseshare_audit_chained", "Audit entries the sequencer chained", registry=metrics.registry
    )
    service_metrics.install(
        app,
        metrics,
        engine=lambda: getattr(app.state, "engine", None),
        sessionmaker=lambda: getattr(app.state, "sessionmaker", None),
        samplers=[gauges.audit_queue, gauges.deliveries],
    )
    app.include_router(health_router(lambda: app.state.checks))
    app.include_router(routes_coordinator.router)
    app.include_router(routes_admin.router)
    app.include_router(asyncapi_router(prefix=settings.topic_prefix))
    app.include_router(routes_approvals.router)
    app.include_router(routes_evidence.router)
    dashboard.install(app)
    document_token_url(app, settings.oauth_issuer.rstrip("/") + "/token")
    return app
