"""The embedded authorization server's HTTP surface: token, authorization (sign-in), JWKS,
metadata, health.

For development and tests only; in production any OIDC provider is trusted by issuer URL.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.issuer import authorize, keys, logout, repository, service, signin
from services.issuer.server import IssuerServer
from services.issuer.settings import IssuerSettings
from services.issuer.state import IssuerState
from shared import state as shared_state
from shared.db import create_engine, create_sessionmaker
from shared.state import state_of
from shared.web import BodySizeLimit

logger = logging.getLogger(__name__)


def create_app(settings: IssuerSettings) -> FastAPI:
    """Build the issuer; the lifespan owns the engine and makes sure a signing key exists."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
        state.engine, state.sessionmaker = engine, create_sessionmaker(engine)
        try:
            # Read (or in development made) at start: the one KEK ring this process seals with.
            state.key_ring = settings.key_ring(settings.state_dir)
            async with state.sessionmaker.begin() as session:
                await keys.ensure_active_key(session, state.key_ring)
            yield
        finally:
            await engine.dispose()

    app = FastAPI(title="caseshare issuer", version="1", lifespan=lifespan)
    server = IssuerServer(settings)
    authorize.register(server)
    state = IssuerState(
        settings=settings,
        server=server,
        sign_in=signin.SignIn.create(
            issuer_url=settings.issuer_url,
            free_per_account=settings.failed_auth_free_per_client,
            free_per_peer=settings.failed_auth_free_per_peer,
        ),
        token_limits=service.TokenLimits.from_settings(settings),
    )
    shared_state.install(app, state)
    _add_routes(app, service.metadata(settings))
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    return app


def _state(request: Request) -> IssuerState:
    return state_of(request, IssuerState)


def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    return _state(request).sessionmaker


def _add_routes(app: FastAPI, metadata: dict[str, Any]) -> None:
    @app.post("/token", tags=["oauth"])
    async def token(request: Request) -> Response:
        """RFC 6749 client credentials grant; answers RFC 9068 JWT access tokens."""
        return await service.issue_token(
            request,
            server=_state(request).server,
            sessionmaker=_sessionmaker(request),
            limits=_state(request).token_limits,
            key_ring=_state(request).key_ring,
        )

    @app.api_route("/authorize", methods=["GET", "POST"], tags=["oauth"], response_model=None)
    async def authorization(request: Request) -> Response:
        """RFC 6749 authorization endpoint (code + PKCE S256), with a sign-in page."""
        return await signin.authorize(
            request,
            server=_state(request).server,
            sessionmaker=_sessionmaker(request),
            sign_in=_state(request).sign_in,
        )

    @app.api_route("/logout", methods=["GET", "POST"], tags=["oauth"], response_model=None)
    async def end_session(request: Request) -> Response:
        """RP-initiated logout: ends the issuer's sign-in session, then returns to the client."""
        return await logout.end_session(
            request, sessionmaker=_sessionmaker(request), sign_in=_state(request).sign_in
        )

    @app.get("/jwks.json", tags=["oauth"])
    async def jwks(request: Request) -> JSONResponse:
        document = await service.jwks_document(_sessionmaker(request))
        return JSONResponse(document, headers={"Cache-Control": "public, max-age=60"})

    @app.get("/.well-known/oauth-authorization-server", tags=["oauth"])
    @app.get("/.well-known/openid-configuration", tags=["oauth"])
    async def authorization_server_metadata() -> dict[str, Any]:
        return metadata

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        try:
            async with _sessionmaker(request)() as session:
                await repository.ping(session)
        except Exception:
            logger.warning("database not reachable", exc_info=True)
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ready"})
