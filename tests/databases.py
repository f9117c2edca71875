"""Throwaway databases on the test server, for tests that commit, tamper or migrate.

The shared test database isolates tests by savepoint rollback, which cannot cover a request
that commits through an app, a superuser disabling a trigger, or a schema being dropped. Such
tests get a database of their own: empty (for the migration tests), or a clone of a template
that was migrated and seeded once per session, which takes a fraction of a second where a
fresh upgrade takes over a second. Databases are not dropped: DROP DATABASE checkpoints, and
the whole cluster lives in a temporary directory that goes at the end of the session.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from caseshare.stack.embedded import EmbeddedPostgres
from services.registry import migrate
from services.registry.reference import seed
from shared.db import create_engine, create_sessionmaker, transaction

TEMPLATE = "caseshare_template"
_template_ready: dict[int, asyncio.Lock] = {}


def url_for(postgres: EmbeddedPostgres, name: str) -> str:
    """The server's URL with another database name."""
    return postgres.url.rsplit("/", 1)[0] + f"/{name}"


def create_empty(postgres: EmbeddedPostgres, prefix: str = "t") -> str:
    """A new database with nothing in it; returns its URL."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    postgres.psql(f'CREATE DATABASE "{name}"')
    return url_for(postgres, name)


async def _build_template(postgres: EmbeddedPostgres) -> None:
    exists = postgres.psql(f"SELECT 1 FROM pg_database WHERE datname = '{TEMPLATE}'")
    if exists.strip():
        return
    postgres.psql(f'CREATE DATABASE "{TEMPLATE}"')
    url = url_for(postgres, TEMPLATE)
    await migrate.upgrade_async(url)
    engine = create_engine(url, pool_size=1)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            await seed.load(session)
    finally:
        await engine.dispose()  # a template must have no connections when it is cloned


async def migrated(postgres: EmbeddedPostgres) -> str:
    """A new database at the head revision with the reference data; returns its URL."""
    lock = _template_ready.setdefault(postgres.port, asyncio.Lock())
    async with lock:
        await _build_template(postgres)
    name = f"m_{secrets.token_hex(6)}"
    postgres.psql(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    return url_for(postgres, name)


@asynccontextmanager
async def engine_for(url: str) -> AsyncIterator[AsyncEngine]:
    """A small engine on a throwaway database, disposed on exit."""
    engine = create_engine(url, pool_size=2)
    try:
        yield engine
    finally:
        await engine.dispose()
