"""Fixtures for integration modules whose apps commit: a database of the module's own.

The shared test database isolates tests by savepoint rollback, which an app that commits its
own transactions escapes. A module that asks for `database` (its URL) or `db` (an engine on
it) gets a clone of the migrated template, made once for the module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from caseshare.stack.embedded import EmbeddedPostgres
from tests import databases


@pytest.fixture(scope="module")
async def database(postgres: EmbeddedPostgres) -> str:
    return await databases.migrated(postgres)


@pytest.fixture(scope="module")
async def db(database: str) -> AsyncIterator[AsyncEngine]:
    async with databases.engine_for(database) as engine:
        yield engine
