"""The intake and registry apps in process, over the suite's database, trusting a test key.

Requests cross httpx's ASGITransport and the real middleware, auth and problem handlers; the
tokens are real ES256 JWTs from `tests.tokens.TokenMint`. `world` commits a small fixed scene
(FR and DE cases sharing a selector, and a response delivered to both) that the tests only
read or try to reach across jurisdictions.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.registry.app import create_app as create_registry
from services.registry.cases import service as cases
from services.registry.context import Actor, Context
from services.registry.responses import service as responses
from services.registry.settings import RegistrySettings
from services.router import fanout
from shared.db import transaction
from tests import factories
from tests.conftest import HMAC_KEY
from tests.tokens import ISSUER, TokenMint

TOPIC_PREFIX = "tapisecurity"


def settings_values(database_url: str, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "DATABASE_POOL_SIZE": 2,
        "OAUTH_ISSUER": ISSUER,
        "SELECTOR_HMAC_KEY": HMAC_KEY,
        "KAFKA_TOPIC_PREFIX": TOPIC_PREFIX,
    }
    return values | overrides


def intake_settings(database_url: str, **overrides: Any) -> IntakeSettings:
    return IntakeSettings.model_validate(settings_values(database_url, **overrides))


def registry_settings(database_url: str, **overrides: Any) -> RegistrySettings:
    return RegistrySettings.model_validate(settings_values(database_url, **overrides))


@pytest.fixture(scope="session")
def mint() -> TokenMint:
    return TokenMint()


async def _running(app: FastAPI) -> AsyncIterator[FastAPI]:
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def intake_app(
    database_url: str, engine: AsyncEngine, mint: TokenMint
) -> AsyncIterator[FastAPI]:
    async with mint.http() as http:
        async for app in _running(create_intake(intake_settings(database_url), http=http)):
            yield app


@pytest.fixture(scope="session")
async def registry_app(
    database_url: str, engine: AsyncEngine, mint: TokenMint
) -> AsyncIterator[FastAPI]:
    async with mint.http() as http:
        async for app in _running(create_registry(registry_settings(database_url), http=http)):
            yield app


def asgi_client(app: FastAPI, base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


@pytest.fixture
async def intake(intake_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(intake_app, "http://intake.test") as client:
        yield client


@pytest.fixture
async def registry(registry_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(registry_app, "http://registry.test") as client:
        yield client


@dataclass(frozen=True)
class World:
    """Objects owned by FR and by DE: `cases[code]`, `deliveries[code]`, one response."""

    cases: dict[str, uuid.UUID]
    deliveries: dict[str, uuid.UUID]
    response_id: uuid.UUID


async def build_world(sm: async_sessionmaker[AsyncSession]) -> World:
    """FR and DE open cases on one selector; a platform answers; both get a delivery."""
    ctx = Context(hmac_key=HMAC_KEY.encode(), topic_prefix=TOPIC_PREFIX)
    shared = factories.selector()
    opened: dict[str, uuid.UUID] = {}
    async with transaction(sm) as session:
        for code in ("FR", "DE"):
            actor = Actor(client_id=f"authority-{code.lower()}", jurisdiction=code)
            case = await cases.register(
                session, actor=actor, data=factories.case(selectors=[shared]), ctx=ctx
            )
            opened[code] = case.id
        accepted = await responses.submit(
            session,
            platform="telegram",
            client_id="platform-telegram",
            data=factories.response(case_ids=[opened["FR"]], selectors=[shared]),
            ctx=ctx,
        )
    async with transaction(sm) as session:
        await fanout.decide_and_record(session, response_id=accepted.id, prefix=TOPIC_PREFIX)
    deliveries = {code: fanout.delivery_id(accepted.id, code) for code in opened}
    return World(cases=opened, deliveries=deliveries, response_id=accepted.id)


@pytest.fixture(scope="session")
async def world(sessionmaker: async_sessionmaker[AsyncSession]) -> World:
    return await build_world(sessionmaker)
