"""The deploy's one-shot jobs: migration with grants for the application role, and topics."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from caseshare.stack.embedded import EmbeddedTansu
from services.jobs import migrate
from services.router import topics
from services.router.settings import RouterSettings

pytestmark = pytest.mark.integration


def plain_dsn(database_url: str, *, user: str | None = None, password: str = "") -> str:
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    if user is None:
        return dsn
    return f"postgresql://{user}:{password}" + dsn[dsn.index("@") :]


async def test_the_migrate_job_lets_the_app_role_use_data_but_not_change_the_schema(
    database_url: str,
) -> None:
    role = "app_" + uuid.uuid4().hex[:8]
    password = uuid.uuid4().hex
    owner = await asyncpg.connect(plain_dsn(database_url))
    try:
        await owner.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER PASSWORD '{password}'")
        await owner.execute(f"GRANT CONNECT ON DATABASE caseshare TO {role}")
        settings = migrate.MigrateSettings(DATABASE_URL=database_url, DATABASE_APP_ROLE=role)
        await migrate.run(settings)
        app = await asyncpg.connect(plain_dsn(database_url, user=role, password=password))
        try:
            assert await app.fetchval("SELECT count(*) FROM jurisdictions") > 20
            async with app.transaction():
                await app.execute("UPDATE jurisdictions SET name = name WHERE code = 'FR'")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute("CREATE TABLE intruder (id int)")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute("DROP TABLE jurisdictions")
        finally:
            await app.close()
    finally:
        await owner.execute(f"REVOKE CONNECT ON DATABASE caseshare FROM {role}")
        await owner.execute(f"DROP OWNED BY {role}")
        await owner.execute(f"DROP ROLE {role}")
        await owner.close()


def test_role_names_that_are_not_plain_identifiers_are_refused() -> None:
    with pytest.raises(ValueError, match="plain role name"):
        migrate.grant_statements("app; DROP TABLE cases")


async def test_the_topics_job_creates_every_topic_once(
    database_url: str, broker: EmbeddedTansu, topic_prefix: str
) -> None:
    settings = RouterSettings(
        DATABASE_URL=database_url,
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
        KAFKA_TOPIC_PREFIX=topic_prefix,
        KAFKA_PARTITIONS=2,
    )
    created = await topics.provision(settings)
    assert f"{topic_prefix}.inbox.FR.v1" in created
    assert f"{topic_prefix}.responses.v1" in created
    assert await topics.provision(settings) == set()
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        assert created <= set(await admin.list_topics())
    finally:
        await admin.close()
