"""A throwaway PostgreSQL database for the issuer's integration tests.

Stands in until the shared embedded-PostgreSQL fixtures land: it creates a uniquely named
database on CASESHARE_TEST_DATABASE_URL's server, creates the tables from the models, and drops
the database afterwards. Nothing else depends on it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError

import services.issuer.models  # noqa: F401  (registers the issuer's tables on Base.metadata)
from shared.db import Base, create_engine

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    return os.environ.get("CASESHARE_TEST_DATABASE_URL", DEFAULT_URL)


@asynccontextmanager
async def temporary_database() -> AsyncIterator[str]:
    """Yield the URL of a fresh database holding the issuer's tables; drop it afterwards."""
    admin_url = make_url(server_url())
    name = f"caseshare_auth_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url.render_as_string(hide_password=False), pool_size=1)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await engine.dispose()
        yield url
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def server_reachable() -> bool:
    """Whether the test PostgreSQL server answers, so the tests can skip with a reason."""
    engine = create_engine(server_url(), pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except (OSError, DBAPIError):
        return False
    finally:
        await engine.dispose()
    return True
