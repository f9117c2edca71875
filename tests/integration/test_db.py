"""The engine factory: a pooled connection the server has closed is replaced at checkout.

The engine has no `pool_pre_ping`, so this is what stands between a PostgreSQL restart and a
failed request: the closed connection is noticed from local state and a new one is opened.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.db import create_engine

pytestmark = pytest.mark.integration

BACKEND_PID = text("SELECT pg_backend_pid()")


async def test_connections_the_server_closed_are_replaced_without_an_error(
    database_url: str,
) -> None:
    engine = create_engine(database_url, pool_size=2)
    killer = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as a, engine.connect() as b:  # two pooled connections
            pids = {await a.scalar(BACKEND_PID), await b.scalar(BACKEND_PID)}
        async with killer.connect() as conn:
            await conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) pid"),
                {"pids": sorted(pids)},
            )
        await asyncio.sleep(0.5)  # the event loop reads each backend's goodbye and the EOF

        for _ in range(2):
            async with engine.connect() as conn:
                assert await conn.scalar(BACKEND_PID) not in pids
    finally:
        await engine.dispose()
        await killer.dispose()


async def test_a_failed_statement_does_not_quote_its_parameters(database_url: str) -> None:
    """PostgreSQL refuses NUL in text; the error must not carry the other values sent with it."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(
                    text("SELECT CAST(:phone AS text), CAST(:bad AS text)"),
                    {"phone": "+33612345678", "bad": "a\x00b"},
                )
        assert "+33612345678" not in str(caught.value)
        assert "parameters hidden" in str(caught.value)
    finally:
        await engine.dispose()
