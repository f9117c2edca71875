"""What the router's consumer retries: a real deadlock from PostgreSQL, as SQLAlchemy raises
it, is transient (the aborted transaction succeeds when tried again); bad SQL is not."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.router.consumer import is_transient

pytestmark = pytest.mark.integration


async def test_a_deadlock_is_retried_and_bad_sql_is_not(engine: AsyncEngine) -> None:
    table = "deadlock_probe"
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE IF NOT EXISTS {table} (id int PRIMARY KEY)"))
        await conn.execute(text(f"INSERT INTO {table} VALUES (1), (2) ON CONFLICT DO NOTHING"))
    both_hold = asyncio.Barrier(2)

    async def lock(first: int, second: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(text(f"SELECT 1 FROM {table} WHERE id = {first} FOR UPDATE"))
            await both_hold.wait()
            await conn.execute(text(f"SELECT 1 FROM {table} WHERE id = {second} FOR UPDATE"))

    try:
        outcomes = await asyncio.gather(lock(1, 2), lock(2, 1), return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(failed) == 1
        assert isinstance(failed[0], DBAPIError)
        assert "deadlock" in str(failed[0])
        assert is_transient(failed[0])
        with pytest.raises(DBAPIError) as bad_sql:
            async with engine.begin() as conn:
                await conn.execute(text("SELECT no_such_column FROM deadlock_probe"))
        assert not is_transient(bad_sql.value)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE {table}"))
