"""Per-client rate limits on the write endpoints: 429 problem+json with Retry-After.

The apps here get a burst of two and a trickle of refill, so the third write in a row is
refused. Bodies are deliberately invalid: the limit is spent before the body is validated,
so nothing is written while the bucket is drained.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.app import create_app as create_intake
from services.registry.app import create_app as create_registry
from tests.integration.api.conftest import asgi_client, intake_settings, registry_settings
from tests.tokens import TokenMint, bearer

pytestmark = pytest.mark.integration

TIGHT = {"WRITE_RATE_PER_SECOND": 0.001, "WRITE_RATE_BURST": 2}


@pytest.fixture
async def tight_intake(
    database_url: str, engine: AsyncEngine, mint: TokenMint
) -> AsyncIterator[httpx.AsyncClient]:
    async with mint.http() as http:
        app = create_intake(intake_settings(database_url, **TIGHT), http=http)
        async with app.router.lifespan_context(app), asgi_client(app, "http://i.test") as client:
            yield client


@pytest.fixture
async def tight_registry(
    database_url: str, engine: AsyncEngine, mint: TokenMint
) -> AsyncIterator[httpx.AsyncClient]:
    async with mint.http() as http:
        app: FastAPI = create_registry(registry_settings(database_url, **TIGHT), http=http)
        async with app.router.lifespan_context(app), asgi_client(app, "http://r.test") as client:
            yield client


def _assert_limited(answer: httpx.Response) -> None:
    assert answer.status_code == 429
    assert answer.headers["content-type"] == "application/problem+json"
    assert int(answer.headers["retry-after"]) >= 1
    assert answer.json()["type"].endswith("/rate-limited")


async def test_intake_refuses_a_clients_third_write_but_not_others_or_reads(
    tight_intake: httpx.AsyncClient, mint: TokenMint
) -> None:
    fr = bearer(mint.authority("FR"))
    for _ in range(2):
        assert (await tight_intake.post("/v1/cases", headers=fr, json={})).status_code == 422
    _assert_limited(await tight_intake.post("/v1/cases", headers=fr, json={}))
    _assert_limited(await tight_intake.patch(f"/v1/cases/{'0' * 32}", headers=fr, json={}))
    # The bucket is the client's: another authority and FR's own reads go through.
    de = bearer(mint.authority("DE"))
    assert (await tight_intake.post("/v1/cases", headers=de, json={})).status_code == 422
    assert (await tight_intake.get("/v1/cases", headers=fr)).status_code == 200


async def test_platform_submissions_are_limited_per_client(
    tight_intake: httpx.AsyncClient, mint: TokenMint
) -> None:
    telegram = bearer(mint.platform("telegram"))
    for _ in range(2):
        await tight_intake.post("/v1/responses", headers=telegram, json={})
    _assert_limited(await tight_intake.post("/v1/responses", headers=telegram, json={}))


async def test_registry_admin_writes_are_limited(
    tight_registry: httpx.AsyncClient, mint: TokenMint
) -> None:
    admin = bearer(mint.admin())
    for _ in range(2):
        answer = await tight_registry.patch(
            "/v1/registry/platforms/telegram", headers=admin, json={"unknown": 1}
        )
        assert answer.status_code == 422
    _assert_limited(
        await tight_registry.post("/v1/registry/platforms", headers=admin, json={"unknown": 1})
    )
    assert (await tight_registry.get("/v1/registry/platforms", headers=admin)).status_code == 200
