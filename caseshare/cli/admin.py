"""`caseshare clients ...` and `caseshare keys ...`: operating the embedded issuer's database.

They talk to PostgreSQL directly (DATABASE_URL), not to a running issuer, so an operator can
register a client or rotate the signing key before the issuer starts or while it runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from caseshare.stack.embedded import local_database_url
from services.issuer import clients, keys
from services.issuer.models import ClientKind
from services.issuer.settings import MAX_TOKEN_LIFETIME_SECONDS, IssuerSettings
from shared.auth.scopes import Scope
from shared.db import create_engine, create_sessionmaker, transaction
from shared.settings import DatabaseSettings

T = TypeVar("T")
clients_app = typer.Typer(
    help="Register OAuth clients of the embedded issuer.", no_args_is_help=True
)
keys_app = typer.Typer(help="Manage the embedded issuer's signing keys.", no_args_is_help=True)

DatabaseUrl = Annotated[
    str,
    typer.Option(envvar="DATABASE_URL", help="PostgreSQL of the issuer", show_default=False),
]
DEFAULT_DATABASE_URL = str(DatabaseSettings.model_fields["database_url"].default)


def _run(database_url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one transaction against `database_url`, then dispose of the engine."""

    async def main() -> T:
        url = database_url
        if url == DEFAULT_DATABASE_URL:  # nothing given: `make run`'s, if it is there
            url = local_database_url(url)
        engine = create_engine(url, pool_size=1)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _read_jwks(path: Path) -> dict[str, Any]:
    """A JWK set, or a single JWK wrapped into one."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"cannot read a JSON key from {path}: {exc}") from None
    if not isinstance(document, dict):
        raise typer.BadParameter(f"{path} holds no JWK or JWK set")
    return document if "keys" in document else {"keys": [document]}


@clients_app.command("create")
def create(
    client_id: Annotated[str, typer.Argument(help="e.g. authority-fr, platform-telegram")],
    kind: Annotated[ClientKind, typer.Option(help="who the client acts for")],
    jurisdiction: Annotated[str | None, typer.Option(help="ISO code, authorities only")] = None,
    platform: Annotated[str | None, typer.Option(help="slug, platforms only")] = None,
    scope: Annotated[
        list[Scope] | None, typer.Option(help="allowed scope (repeat); default by kind")
    ] = None,
    public_jwk: Annotated[
        Path | None, typer.Option(help="public JWK or JWK set: private_key_jwt only")
    ] = None,
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
) -> None:
    """Register a client and print its secret once; it is stored only as a hash."""
    jwks = _read_jwks(public_jwk) if public_jwk is not None else None

    async def work(session: AsyncSession) -> str | None:
        return await clients.create_client(
            session,
            client_id=client_id,
            kind=kind,
            jurisdiction=jurisdiction,
            platform=platform,
            scopes=scope,
            public_jwks=jwks,
        )

    try:
        secret = _run(database_url, work)
    except ValueError as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(2) from None
    except IntegrityError:
        typer.echo(
            f"refused: {client_id!r} exists, or names an unknown jurisdiction or platform", err=True
        )
        raise typer.Exit(1) from None
    if secret is None:
        typer.echo(f"registered {client_id}: authenticates with private_key_jwt only")
        return
    typer.echo(f"registered {client_id}; its secret, shown this once:", err=True)
    typer.echo(secret)


@keys_app.command("rotate")
def rotate(
    grace: Annotated[
        int, typer.Option(help="seconds the previous key stays published", min=0)
    ] = int(IssuerSettings.model_fields["key_grace_seconds"].default),
    database_url: DatabaseUrl = DEFAULT_DATABASE_URL,
) -> None:
    """Sign new tokens with a fresh ES256 key; the previous one stays published for --grace."""
    if grace < MAX_TOKEN_LIFETIME_SECONDS:
        typer.echo(
            f"refused: a grace under {MAX_TOKEN_LIFETIME_SECONDS} s would cut tokens in flight",
            err=True,
        )
        raise typer.Exit(2)

    async def work(session: AsyncSession) -> str:
        return await keys.rotate(session, grace=timedelta(seconds=grace))

    kid = _run(database_url, work)
    typer.echo(kid)
