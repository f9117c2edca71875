"""Database plumbing shared by every service: the declarative base, naming rules, engine factory.

Engines are built by each service's lifespan from its settings; nothing here connects at import.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import DateTime, MetaData, event, func
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, mapped_column
from sqlalchemy.util import greenlet_spawn

# Deterministic constraint names keep Alembic migrations and models comparable.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base for every caseshare table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def check_in(column: str, values: tuple[str, ...]) -> str:
    """A CHECK constraint's text that keeps `column` within an enumeration's values."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


def created_now() -> Any:
    """A timestamp column that PostgreSQL fills with the transaction's time."""
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


# Connections older than this are replaced at checkout, so one the server silently dropped
# (a failover, a firewall's idle timeout) does not linger in the pool for ever.
POOL_RECYCLE_SECONDS = 1800


def create_engine(
    url: str, *, pool_size: int = 10, max_overflow: int | None = None, echo: bool = False
) -> AsyncEngine:
    """Build an asyncpg engine; callers own its lifetime and dispose of it.

    Up to `pool_size` connections stay open; `max_overflow` more (as many again by default)
    are opened under a burst and closed when they come back.

    No `pool_pre_ping`: on asyncpg it is three round trips (BEGIN, a ping, ROLLBACK) per
    checkout, more than many requests spend on their own statements. `_refuse_closed` does
    the same job from local state instead, and a connection that dies mid-request is still
    recognised as a disconnect, which invalidates the pool.

    `hide_parameters`: a failed statement's error would otherwise quote its parameters, which
    are disclosed records and selectors, into whatever logs the exception.
    """
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_recycle=POOL_RECYCLE_SECONDS,
        echo=echo,
        hide_parameters=True,
    )
    event.listen(engine.sync_engine.pool, "checkout", _refuse_closed)
    return engine


def _refuse_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Replace a pooled connection the server has closed, and every one older than it.

    asyncpg keeps reading from idle connections, so a server that shuts down or restarts (its
    backends send a termination notice and close the socket) marks them closed at once. The
    pool then invalidates all connections checked in before now and retries with a new one.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise InvalidatePoolError("the server closed this pooled connection")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit, as request handlers expect."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One transaction per request or message, owned by the caller (STYLE.md rule 4)."""
    async with sessionmaker() as session, session.begin():
        yield session


@asynccontextmanager
async def single_statements(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[Any]:
    """A pooled asyncpg connection outside any explicit transaction, for a use case whose
    writes are one statement (a server-side function): the statement is its transaction, so
    there is no BEGIN or COMMIT to wait for. Anything that needs several statements to
    commit together belongs in `transaction`.

    Checking the connection out and back sends nothing: the driver adapter only starts a
    transaction on its own first statement, and it runs none. The connection comes straight
    from the engine's pool rather than through an `AsyncConnection`: that wrapper's checkout,
    autocommit option and shielded close took four greenlet switches and an extra task, about
    three times the CPU of the pool's own checkout, on intake's hottest path.
    """
    engine: AsyncEngine = sessionmaker.kw["bind"]
    pooled = await engine.raw_connection()
    try:
        yield pooled.driver_connection
    finally:
        # Checked in under a greenlet, as the pool may await the driver (closing an overflow
        # connection, rolling back one left in a transaction).
        await greenlet_spawn(pooled.close)
        # asyncpg hands its query loggers and notices to the loop (call_soon): one turn lets
        # them see the statement while the request is still in flight, as they did when the
        # shielded close above took a few turns.
        await asyncio.sleep(0)
