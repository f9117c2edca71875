"""The schema's only road is Alembic: it builds an empty database, unbuilds it, and matches the
models, so what the code expects is what production gets.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, Connection

from caseshare.stack.embedded import EmbeddedPostgres
from services.registry import migrate
from services.registry.tables import metadata
from tests import databases

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_PACKAGES = ("services", "shared")
OBJECTS = """
    SELECT 'table ' || tablename FROM pg_tables WHERE schemaname = 'public'
    UNION ALL SELECT 'sequence ' || sequencename FROM pg_sequences WHERE schemaname = 'public'
    UNION ALL SELECT 'function ' || proname FROM pg_proc
        WHERE pronamespace = 'public'::regnamespace
    UNION ALL SELECT 'type ' || typname FROM pg_type
        WHERE typnamespace = 'public'::regnamespace AND typtype IN ('e', 'd', 'c')
        AND typrelid = 0
    UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
"""


def head() -> str:
    revision = ScriptDirectory.from_config(migrate.alembic_config("unused")).get_current_head()
    assert revision is not None
    return revision


def objects(postgres: EmbeddedPostgres, url: str) -> set[str]:
    """Every user-made object in the database's public schema, by kind and name."""
    return set(postgres.psql(OBJECTS, database=_db(url)).splitlines())


def names(found: set[str], kind: str) -> set[str]:
    return {entry.split(" ", 1)[1] for entry in found if entry.startswith(kind + " ")}


async def test_upgrade_downgrade_and_upgrade_again_from_empty(postgres: EmbeddedPostgres) -> None:
    url = databases.create_empty(postgres, prefix="migrations")
    await asyncio.to_thread(migrate.upgrade, url)
    built = objects(postgres, url)
    assert names(built, "table") == {*metadata.tables, "alembic_version"}
    assert {"audit_log_no_update", "audit_log_no_truncate", "outbox_notify"} <= names(
        built, "trigger"
    )
    await asyncio.to_thread(migrate.downgrade, url, "base")
    assert objects(postgres, url) == {"table alembic_version"}
    await asyncio.to_thread(migrate.upgrade, url)
    assert objects(postgres, url) == built
    version = postgres.psql("SELECT version_num FROM alembic_version", database=_db(url))
    assert version.strip() == head()


async def test_models_and_migrations_agree(postgres: EmbeddedPostgres) -> None:
    url = databases.create_empty(postgres, prefix="compare")
    await asyncio.to_thread(migrate.upgrade, url)
    async with databases.engine_for(url) as engine, engine.connect() as conn:
        differences = await conn.run_sync(_compare)
    assert differences == []


CHECKS = """
    SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
    WHERE contype = 'c' AND connamespace = 'public'::regnamespace
"""
LITERAL = re.compile(r"'([^']*)'")


async def test_every_enumeration_check_allows_exactly_the_models_values(
    postgres: EmbeddedPostgres,
) -> None:
    """Alembic does not compare CHECK constraints, so a migration that rebuilds a state's
    CHECK from an older list would pass the comparison above and refuse a new state at run
    time. Every `column IN (...)` check must allow exactly the values of its enum."""
    url = await databases.migrated(postgres)
    found = {}
    for line in postgres.psql(CHECKS, database=_db(url)).splitlines():
        name, _, definition = line.partition("|")
        found[name.strip()] = set(LITERAL.findall(definition))
    expected = {
        str(constraint.name): set(LITERAL.findall(str(constraint.sqltext)))
        for table in metadata.tables.values()
        for constraint in table.constraints
        if isinstance(constraint, CheckConstraint) and " IN (" in str(constraint.sqltext)
    }
    assert expected
    assert {name: found.get(name) for name in expected} == expected


def _compare(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def test_no_production_code_creates_tables_outside_migrations() -> None:
    calls = re.compile(r"\bcreate_all\b")
    offenders = [
        str(path.relative_to(ROOT))
        for package in PRODUCTION_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if calls.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def _db(url: str) -> str:
    return url.rsplit("/", 1)[1]
