"""Finding 5 of the attack run: streams outlived their token, and one caller took every slot.

An SSE stream (API and dashboard share `services.registry.web.stream`) is authorised when it
opens. It now ends when the token that opened it expires, with a `reauthenticate` event first,
and the cap on open streams applies per caller as well as in all. The app runs under uvicorn
over the real database; the stream's clock is moved instead of waiting a token's life out.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.registry.context import Context
from services.registry.responses import service as responses
from services.registry.state import RegistryState
from services.registry.web.stream import REAUTHENTICATE, Viewers
from shared.db import transaction
from shared.state import state_of
from tests import factories
from tests.registry_api import (
    COORDINATOR,
    Registry,
    next_events,
    running,
    serving,
    settings_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def registry(
    database_url: str, topic_prefix: str, engine: AsyncEngine
) -> AsyncIterator[Registry]:
    settings = settings_for(
        database_url,
        topic_prefix,
        REGISTRY_STREAM_MAX_CLIENTS=4,
        REGISTRY_STREAM_MAX_PER_CLIENT=2,
    )
    async with running(settings) as reg:
        yield reg


async def submit(sm: async_sessionmaker[AsyncSession], ctx: Context) -> uuid.UUID:
    async with transaction(sm) as session:
        accepted = await responses.submit(
            session,
            platform="telegram",
            client_id="platform-telegram",
            data=factories.response(selectors=[factories.selector()]),
            ctx=ctx,
        )
    return accepted.id


async def counted(viewers: Viewers, expected: int) -> None:
    """Wait until the app counts `expected` open streams (each counts once it starts)."""
    for _ in range(250):
        if viewers.open == expected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{viewers.open} streams open, expected {expected}")


async def test_a_stream_ends_when_its_token_expires_after_asking_to_reauthenticate(
    registry: Registry, sessionmaker: async_sessionmaker[AsyncSession], ctx: Context
) -> None:
    viewers: Viewers = state_of(registry.app, RegistryState).viewers
    shift = timedelta()
    viewers.clock = lambda: datetime.now(UTC) + shift
    token = registry.issuer.token(COORDINATOR, lifetime=60)
    auth = {"Authorization": f"Bearer {token}"}
    async with (
        serving(registry.app) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
        http.stream("GET", "/v1/registry/stream", headers=auth) as live,
    ):
        assert live.status_code == 200
        lines = live.aiter_lines()
        first = await submit(sessionmaker, ctx)
        [event] = await next_events(lines, 1)
        assert event.data["data"]["response_id"] == str(first)
        shift = timedelta(seconds=61)  # the token's minute is over
        await submit(sessionmaker, ctx)  # may still go out if a poll was under way
        rest = await next_events(lines, None)  # times out if the stream goes on
        assert rest, "the stream ended without asking the viewer to sign in again"
        assert rest[-1].event == REAUTHENTICATE
        assert [e.event for e in rest[:-1]] in ([], ["response.received"])
        assert int(rest[-1].id) >= int(event.id)  # where to resume once signed in again
    await counted(viewers, 0)


async def test_one_caller_cannot_take_every_stream(registry: Registry) -> None:
    viewers: Viewers = state_of(registry.app, RegistryState).viewers
    greedy = registry.issuer.auth(COORDINATOR, client_id="greedy-desk")
    other = registry.issuer.auth(COORDINATOR, client_id="other-desk")
    async with (
        serving(registry.app) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
        http.stream("GET", "/v1/registry/stream", headers=greedy) as one,
    ):
        assert one.status_code == 200
        async with http.stream("GET", "/v1/registry/stream", headers=greedy) as two:
            assert two.status_code == 200
            await counted(viewers, 2)
            third = await http.get("/v1/registry/stream", headers=greedy)
            assert third.status_code == 429
            assert third.headers["content-type"] == "application/problem+json"
            async with http.stream("GET", "/v1/registry/stream", headers=other) as theirs:
                assert theirs.status_code == 200
                await counted(viewers, 3)
    await counted(viewers, 0)
