"""`caseshare kafka acls`: the per-member Kafka access plan, derived from the registry.

Broker ACLs are the only thing that keeps one member from reading another's inbox topic, and
they must follow the reference data: a jurisdiction or platform added by an administrator needs
its grants. So the plan is read from the registry's database (DATABASE_URL), like
`caseshare audit verify`, not from the shipped seed files, and printed in the form the cluster
takes: `kafka-acls.sh` lines for Apache Kafka, or Strimzi `KafkaUser` resources.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Annotated, Final

import typer
from sqlalchemy.exc import ArgumentError, DBAPIError, ProgrammingError

from shared import kafka_acls
from shared.settings import DatabaseSettings

UNREADABLE: Final = 2
CONNECT_TIMEOUT_SECONDS: Final = 10

kafka_app = typer.Typer(help="Kafka access for the hub's members.", no_args_is_help=True)


class Format(StrEnum):
    KAFKA_ACLS = "kafka-acls"
    STRIMZI = "strimzi"


class Authentication(StrEnum):
    TLS = "tls"
    SCRAM = "scram-sha-512"


async def _reference(database_url: str) -> tuple[list[str], list[str]]:
    """Every jurisdiction code and platform slug in the registry, in a stable order."""
    # Imported here so the rest of the CLI starts without loading the registry's models.
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from services.registry.reference.models import Jurisdiction, Platform
    from shared.db import create_sessionmaker, transaction

    engine = create_async_engine(
        database_url, poolclass=NullPool, connect_args={"timeout": CONNECT_TIMEOUT_SECONDS}
    )
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            codes = (await session.scalars(select(Jurisdiction.code).order_by("code"))).all()
            slugs = (await session.scalars(select(Platform.slug).order_by("slug"))).all()
            return list(codes), list(slugs)
    finally:
        await engine.dispose()


@kafka_app.command()
def acls(
    output: Annotated[
        Format, typer.Option("--format", help="kafka-acls.sh lines, or Strimzi KafkaUser YAML")
    ] = Format.KAFKA_ACLS,
    topic_prefix: Annotated[
        str, typer.Option(envvar="KAFKA_TOPIC_PREFIX", help="the hub's topic prefix")
    ] = "caseshare",
    bootstrap: Annotated[
        str, typer.Option(help="kafka-acls: the --bootstrap-server each line names")
    ] = "$BOOTSTRAP",
    command_config: Annotated[
        str, typer.Option(help="kafka-acls: the admin's client properties file")
    ] = "admin.properties",
    cluster: Annotated[str, typer.Option(help="strimzi: the Kafka resource's name")] = "caseshare",
    authentication: Annotated[
        Authentication, typer.Option(help="strimzi: how each KafkaUser authenticates")
    ] = Authentication.TLS,
) -> None:
    """Print every grant the cluster needs for the registry's jurisdictions and platforms."""
    try:
        codes, slugs = asyncio.run(_reference(DatabaseSettings().database_url))
    except ProgrammingError as exc:
        typer.echo(f"cannot read the registry (is the schema migrated?): {exc.orig}", err=True)
        raise typer.Exit(UNREADABLE) from None
    except DBAPIError as exc:
        typer.echo(f"cannot reach the database: {type(exc.orig).__name__}: {exc.orig}", err=True)
        raise typer.Exit(UNREADABLE) from None
    except (OSError, TimeoutError, ArgumentError) as exc:
        typer.echo(f"cannot reach the database: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(UNREADABLE) from None
    try:
        plan = kafka_acls.plan(topic_prefix, jurisdictions=codes, platforms=slugs)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if output is Format.KAFKA_ACLS:
        lines = kafka_acls.kafka_acls_commands(
            plan, bootstrap=bootstrap, command_config=command_config
        )
        typer.echo("\n".join(lines))
    else:
        users = kafka_acls.strimzi_users(plan, cluster=cluster, authentication=authentication.value)
        typer.echo(kafka_acls.to_yaml(users), nl=False)
