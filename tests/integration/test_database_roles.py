"""Finding 1 of the attack run: the embedded PostgreSQL let anyone on the host in as superuser.

Now every connection needs a password (scram-sha-256), and `caseshare up` migrates as the
owner role and runs the services as an application role that can use data but can neither
change the schema nor rewrite the audit log, not even by disabling its trigger.
"""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

import asyncpg
import pytest

from caseshare.stack import up
from caseshare.stack.embedded import (
    PG_APP,
    PG_OWNER,
    PG_SUPERUSER,
    EmbeddedPostgres,
    EmbeddedTansu,
    local_database_url,
)

pytestmark = pytest.mark.integration


def plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def test_a_connection_without_the_password_is_refused(postgres: EmbeddedPostgres) -> None:
    for role in (PG_SUPERUSER, PG_OWNER, PG_APP):
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(
                host=postgres.host, port=postgres.port, user=role, database="postgres"
            )
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(
                host=postgres.host,
                port=postgres.port,
                user=role,
                password="not-" + secrets.token_hex(8),
                database="postgres",
            )


def test_the_passwords_and_the_servers_logs_are_kept_owner_only(
    postgres: EmbeddedPostgres, broker: EmbeddedTansu
) -> None:
    assert set(postgres.passwords()) == {PG_SUPERUSER, PG_OWNER, PG_APP}
    assert broker.log_path is not None
    for path in (postgres.password_file, postgres.data_dir / "server.log", broker.log_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@pytest.fixture
async def dev_database(postgres: EmbeddedPostgres, tmp_path: Path) -> str:
    """A database prepared exactly as `caseshare up` prepares its own; yields its name."""
    name = f"up_{secrets.token_hex(6)}"
    postgres.psql(f'CREATE DATABASE "{name}" OWNER {PG_OWNER}')
    await up.prepare_database(postgres.url_for(PG_OWNER, name), tmp_path)
    return name


async def test_the_services_role_cannot_alter_the_schema_or_rewrite_the_audit_log(
    postgres: EmbeddedPostgres, broker: EmbeddedTansu, dev_database: str, tmp_path: Path
) -> None:
    env = up.build_env(tmp_path, {}, postgres, broker)
    assert env["DATABASE_URL"].startswith(f"postgresql+asyncpg://{PG_APP}:")
    app = await asyncpg.connect(plain(postgres.url_for(PG_APP, dev_database)))
    try:
        assert await app.fetchval("SELECT count(*) FROM jurisdictions") > 20
        assert await app.fetchval("SELECT count(*) FROM audit_log") >= 0
        refused = (
            "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update",
            "ALTER TABLE signing_keys ADD COLUMN leak text",
            "UPDATE audit_log SET details = '{}'::jsonb",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
            "DROP TABLE cases",
            "CREATE TABLE intruder (id int)",
        )
        for statement in refused:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute(statement)
    finally:
        await app.close()


def test_operator_commands_find_the_local_password_only_without_database_url(
    postgres: EmbeddedPostgres, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASESHARE_STATE_DIR", str(state_dir))
    monkeypatch.setenv("CASESHARE_PG_PORT", str(postgres.port))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert local_database_url("postgresql+asyncpg://x@h/d") == postgres.app_url
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://x@h/d")
    assert local_database_url("postgresql+asyncpg://x@h/d") == "postgresql+asyncpg://x@h/d"
    monkeypatch.setenv("CASESHARE_STATE_DIR", str(state_dir / "nowhere"))
    monkeypatch.delenv("DATABASE_URL")
    assert local_database_url("postgresql+asyncpg://x@h/d") == "postgresql+asyncpg://x@h/d"
