"""`caseshare audit verify`: check the hash-chained audit log straight from the database.

Operators and auditors need an answer that does not depend on the registry process being up
or on a token, so this connects with `DATABASE_URL` and walks the chain itself. The exit code
is the answer for scripts: 0 intact, 1 broken (the first broken entry is printed), 2 when the
log could not be read at all. The head it prints (seq and hash), kept somewhere the database's
administrators cannot write, is an anchor: `--anchor-seq/--anchor-hash` then also catch a
deleted tail or a chain rewritten with recomputed hashes.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Final

import typer
from sqlalchemy.exc import ArgumentError, DBAPIError, ProgrammingError

from caseshare.stack.embedded import local_database_url
from shared.audit_chain import HASH_RE, VerifyResult
from shared.settings import DatabaseSettings

INTACT: Final = 0
BROKEN: Final = 1
UNREADABLE: Final = 2
CONNECT_TIMEOUT_SECONDS: Final = 10  # a silent host must not hang a cron job for minutes

audit_app = typer.Typer(help="Inspect the tamper-evident audit log.", no_args_is_help=True)


async def _verify(database_url: str, anchor: tuple[int, str] | None) -> VerifyResult:
    # Imported here so the rest of the CLI starts without loading the registry's models.
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from services.registry.audit import service as audit
    from shared.db import create_sessionmaker, transaction

    engine = create_async_engine(
        database_url, poolclass=NullPool, connect_args={"timeout": CONNECT_TIMEOUT_SECONDS}
    )
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            return await audit.verify(
                session, anchor=audit.Anchor(*anchor) if anchor is not None else None
            )
    finally:
        await engine.dispose()


@audit_app.command()
def verify(
    anchor_seq: Annotated[
        int | None, typer.Option(min=1, help="seq of a head printed by an earlier verify")
    ] = None,
    anchor_hash: Annotated[
        str | None, typer.Option(help="the hash printed with that head (64 hex digits)")
    ] = None,
) -> None:
    """Walk the whole chain; print OK with the entry count and head, or the first broken entry."""
    if (anchor_seq is None) != (anchor_hash is None):
        raise typer.BadParameter("--anchor-seq and --anchor-hash go together")
    if anchor_hash is not None and not HASH_RE.fullmatch(anchor_hash):
        raise typer.BadParameter("--anchor-hash must be 64 lowercase hex digits")
    anchor = (anchor_seq, anchor_hash) if anchor_seq is not None and anchor_hash else None
    settings = DatabaseSettings()
    try:
        result = asyncio.run(_verify(local_database_url(settings.database_url), anchor))
    except ProgrammingError as exc:
        typer.echo(f"cannot read the audit log (is the schema migrated?): {exc.orig}", err=True)
        raise typer.Exit(UNREADABLE) from None
    except DBAPIError as exc:
        typer.echo(f"cannot reach the database: {type(exc.orig).__name__}: {exc.orig}", err=True)
        raise typer.Exit(UNREADABLE) from None
    except (OSError, TimeoutError, ArgumentError) as exc:
        typer.echo(f"cannot reach the database: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(UNREADABLE) from None
    if result.ok:
        reached = f", anchor at seq {anchor[0]} matches" if anchor else ""
        typer.echo(f"OK: {result.checked} entries, chain intact{reached}")
        if result.last_seq is not None:
            typer.echo(f"head: seq {result.last_seq} hash {result.last_hash}")
        raise typer.Exit(INTACT)
    typer.echo(
        f"BROKEN at seq {result.first_broken_seq}: {result.problem}"
        f" ({result.checked} entries verified before it)"
    )
    raise typer.Exit(BROKEN)
