"""Intake: the public REST API where authorities register cases and platforms respond.

`create_app(settings, http=...)` takes an optional HTTP client for the token validator's
discovery and JWKS fetches, as the registry's does; the caller then owns (and closes) it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from services.intake import (
    coordination_routes,
    evidence_routes,
    links_routes,
    platform_routes,
    releases_routes,
    requests_routes,
    responses_routes,
)
from services.intake.routes import router
from services.intake.settings import IntakeSettings
from services.intake.state import IntakeState
from services.intake.webhooks_routes import webhooks_router
from services.registry.cases import wake
from services.registry.context import Context
from shared import heap, logs, tracing
from shared import metrics as service_metrics
from shared import state as shared_state
from shared.auth.validation import TokenValidator
from shared.checks import broker_check, database_check
from shared.db import create_engine, create_sessionmaker
from shared.web import health_router, install_common

FACTORY = "services.intake.app:from_environment"


def from_environment() -> FastAPI:
    """The app of one uvicorn worker process (`INTAKE_WORKERS` > 1), built from its environment."""
    settings = IntakeSettings()
    logs.configure(level=settings.log_level, fmt=settings.log_format, service="intake")
    app = create_app(settings)
    heap.freeze_startup_objects()
    return app


def create_app(settings: IntakeSettings, *, http: httpx.AsyncClient | None = None) -> FastAPI:
    """Build the app; the lifespan owns the engine and the token validator's HTTP client.

    Tests pass `http` (backed by `httpx.MockTransport`) so tokens go through the real
    validation with no issuer running; like a client the app makes itself, it is closed at
    shutdown.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )
        validator = TokenValidator.from_settings(
            settings, http=http or httpx.AsyncClient(timeout=5)
        )
        state.engine = engine
        state.sessionmaker = create_sessionmaker(engine)
        state.context = Context(
            hmac_key=settings.selector_hmac_key.get_secret_value().encode(),
            topic_prefix=settings.topic_prefix,
        )
        state.token_validator = validator
        state.checks = {
            "database": database_check(engine),
            "broker": broker_check(settings.kafka_bootstrap_servers),
        }
        try:
            yield
        finally:
            await validator.aclose()
            await wake.settle(state.sessionmaker)  # the last registrations' wake-up is sent
            await engine.dispose()

    docs = settings.docs_enabled
    app = FastAPI(
        title="caseshare intake",
        version="1.0.0",
        summary="Register cases, submit cooperation responses, read and acknowledge the inbox.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    state = IntakeState(
        settings=settings,
        write_limiter=settings.write_limiter(),
        read_limiter=settings.read_limiter(),
    )
    shared_state.install(app, state)
    install_common(app, max_body_bytes=settings.max_body_bytes)
    tracing.instrument_app(app)
    metrics = service_metrics.ServiceMetrics("intake")
    service_metrics.install(app, metrics, engine=lambda: getattr(state, "engine", None))
    app.include_router(health_router(lambda: state.checks))
    app.include_router(router)
    app.include_router(webhooks_router(settings))
    app.include_router(requests_routes.router)
    app.include_router(platform_routes.router)
    app.include_router(releases_routes.router)
    app.include_router(coordination_routes.router)
    app.include_router(links_routes.router)
    app.include_router(responses_routes.router)
    app.include_router(evidence_routes.router)
    return app
