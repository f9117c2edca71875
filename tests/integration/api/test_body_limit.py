"""Bodies over INTAKE_MAX_BODY_BYTES get 413 problem+json, declared or streamed in chunks.

A body sent in chunks has no Content-Length to refuse up front: the size cap counts it as it
is read, and FastAPI words any failure to read a body as a 400, so the cap replaces that answer
with its own. Both a route answered by the common FastAPI path and the registration's
FastRoute are covered; nothing is written either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.cases.models import Case
from tests.tokens import TokenMint, bearer

pytestmark = pytest.mark.integration
LIMIT = 1024 * 1024  # intake's default


async def chunks(total: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * 65536
        sent += 65536


def _assert_too_large(answer: httpx.Response) -> None:
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith("/payload-too-large")


@pytest.mark.parametrize(("path", "who"), [("/v1/cases", "FR"), ("/v1/responses", None)])
async def test_an_oversized_body_is_413_whether_declared_or_streamed(
    intake: httpx.AsyncClient,
    mint: TokenMint,
    sessionmaker: async_sessionmaker[AsyncSession],
    path: str,
    who: str | None,
) -> None:
    token = mint.authority(who) if who else mint.platform("telegram")
    headers = {**bearer(token), "content-type": "application/json"}
    async with sessionmaker() as s:
        before = await s.scalar(select(func.count()).select_from(Case))
    _assert_too_large(await intake.post(path, headers=headers, content=b"x" * (LIMIT + 1)))
    _assert_too_large(await intake.post(path, headers=headers, content=chunks(LIMIT + 65536)))
    async with sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Case)) == before
