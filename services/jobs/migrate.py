"""`python -m services.jobs.migrate`: migrate the schema, load reference data, grant the app role.

In production the services connect as an application role that owns nothing and is no
superuser; only this job connects as the schema owner (`DATABASE_URL` here is the owner's).
It brings the schema to head, inserts the reference jurisdictions and platforms that are
missing (admins' edits are kept), and grants the application role what the services need on
every table and sequence, including those a later migration creates, except rewriting the
audit log. `caseshare up` runs the same code for the embedded database.
"""

from __future__ import annotations

import asyncio
import logging
import re

from pydantic import Field
from sqlalchemy import text

from services.registry import migrate
from services.registry.reference import seed
from shared import logs
from shared.db import create_engine, create_sessionmaker, transaction
from shared.settings import CommonSettings, DatabaseSettings

logger = logging.getLogger(__name__)
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class MigrateSettings(CommonSettings, DatabaseSettings):
    """The owner's connection, and the role the services log in as (none: no grants)."""

    app_role: str | None = Field(default=None, alias="DATABASE_APP_ROLE", pattern=_ROLE.pattern)


def grant_statements(role: str) -> list[str]:
    """Data access for `role`, now and for objects the owner creates later; never DDL."""
    if not _ROLE.match(role):
        raise ValueError(f"not a plain role name: {role!r}")
    return [
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public"
        f" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public"
        f" GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}",
        # The audit log is append-only for the services: its trigger refuses rewrites, and
        # without these privileges (and without owning the table, so no DISABLE TRIGGER) the
        # application role cannot even try.
        f"REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {role}",
    ]


async def run(settings: MigrateSettings) -> None:
    await migrate.upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            await seed.load(session)
            for statement in grant_statements(settings.app_role) if settings.app_role else []:
                await session.execute(text(statement))
    finally:
        await engine.dispose()


def main() -> None:
    settings = MigrateSettings()
    logs.configure(level=settings.log_level, fmt=settings.log_format, service="migrate")
    asyncio.run(run(settings))
    logger.info("schema at head", extra={"app_role": settings.app_role})


if __name__ == "__main__":
    main()
