"""`caseshare clients create` and `caseshare keys rotate` against the suite's database."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from joserfc.jwk import ECKey
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from typer.testing import CliRunner

from caseshare.cli import app
from services.issuer import clients, keys, repository
from services.issuer.models import OAuthClient
from shared.db import create_engine, create_sessionmaker, transaction

pytestmark = pytest.mark.integration
T = TypeVar("T")


def query(database_url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def main() -> T:
        engine = create_engine(database_url, pool_size=1)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def client_row(database_url: str, client_id: str) -> OAuthClient | None:
    async def work(session: AsyncSession) -> OAuthClient | None:
        return await repository.get_client(session, client_id=client_id)

    return query(database_url, work)


def run(database_url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*args, "--database-url", database_url])
    return result.exit_code, result.stdout, result.stderr


def test_create_prints_the_secret_once_and_stores_only_its_hash(
    database_url: str, engine: AsyncEngine
) -> None:
    client_id = f"authority-fr-{uuid.uuid4().hex[:8]}"
    code, out, err = run(
        database_url, "clients", "create", client_id, "--kind", "authority", "--jurisdiction", "FR"
    )
    assert code == 0, err
    secret = out.strip()
    assert len(secret) >= 40
    assert "shown this once" in err
    row = client_row(database_url, client_id)
    assert row is not None
    assert (row.jurisdiction, row.secret_hash is not None) == ("FR", True)
    assert secret not in (row.secret_hash or "")
    assert clients.verify_secret(secret, row.secret_hash or "")
    again = run(
        database_url, "clients", "create", client_id, "--kind", "authority", "--jurisdiction", "FR"
    )
    assert again[0] == 1


def test_create_with_a_public_jwk_registers_a_key_only_client(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    jwk = tmp_path / "client.jwk.json"
    jwk.write_text(json.dumps(ECKey.generate_key("P-256").as_dict(private=False)))
    client_id = f"platform-telegram-{uuid.uuid4().hex[:8]}"
    code, out, err = run(
        database_url, "clients", "create", client_id, "--kind", "platform",
        "--platform", "telegram", "--public-jwk", str(jwk),
    )  # fmt: skip
    assert code == 0, err
    assert "private_key_jwt only" in out
    row = client_row(database_url, client_id)
    assert row is not None
    assert row.secret_hash is None
    assert row.jwks is not None
    assert row.allowed_scopes == ["responses:write"]


@pytest.mark.parametrize(
    "args",
    [
        ["--kind", "authority"],  # an authority without its jurisdiction
        ["--kind", "platform", "--platform", "telegram", "--jurisdiction", "FR"],
        ["--kind", "authority", "--jurisdiction", "FR", "--public-jwk", "{private}"],
    ],
)
def test_create_refuses_inconsistent_clients(
    database_url: str, engine: AsyncEngine, tmp_path: Path, args: list[str]
) -> None:
    private = tmp_path / "private.json"
    private.write_text(json.dumps(ECKey.generate_key("P-256").as_dict(private=True)))
    args = [str(private) if a == "{private}" else a for a in args]
    client_id = f"bad-{uuid.uuid4().hex[:8]}"
    code, out, _ = run(database_url, "clients", "create", client_id, *args)
    assert code == 2
    assert out == ""
    assert client_row(database_url, client_id) is None


def test_rotate_publishes_the_new_key_beside_the_previous_one(
    database_url: str, engine: AsyncEngine
) -> None:
    async def active(session: AsyncSession) -> str:
        key = await repository.get_active_key(session)
        assert key is not None
        return key.kid

    async def published(session: AsyncSession) -> list[str]:
        return [k["kid"] for k in (await keys.jwks(session))["keys"]]

    query(database_url, keys.ensure_active_key)
    before = query(database_url, active)
    code, out, err = run(database_url, "keys", "rotate", "--grace", "900")
    assert code == 0, err
    kid = out.strip()
    assert query(database_url, active) == kid != before
    assert {kid, before} <= set(query(database_url, published))


def test_rotate_refuses_a_grace_shorter_than_a_token_lifetime(database_url: str) -> None:
    code, _, err = run(database_url, "keys", "rotate", "--grace", "10")
    assert code == 2
    assert "refused" in err
