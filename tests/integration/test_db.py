"""The engine factory: a pooled connection the server has closed is replaced at checkout.

The engine has no `pool_pre_ping`, so this is what stands between a PostgreSQL restart and a
failed request: the closed connection is noticed from local state and a new one is opened.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine, create_sessionmaker, single_statements

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


async def test_single_statements_lends_a_pooled_driver_connection_in_no_transaction(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Straight from the pool: no `AsyncConnection` around it (its checkout and shielded close
    cost intake's hottest path more than the pool itself), no BEGIN, and back in the pool
    after use, also when the statement fails."""
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    sm = create_sessionmaker(engine)

    def no_wrapper(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("single_statements opened an AsyncConnection")

    monkeypatch.setattr(AsyncEngine, "connect", no_wrapper)
    try:
        async with single_statements(sm) as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            assert not conn.is_in_transaction()
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with single_statements(sm) as conn:
                await conn.fetchval("SELECT 1 / 0")
        async with single_statements(sm) as conn:  # the one pooled connection, reused
            assert await conn.fetchval("SELECT pg_backend_pid()") == pid
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
