"""The `caseshare` command line: run the stack, get tokens, operate the hub."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from caseshare.cli import cases, evidence, fanout, inbox, platform, requests, responses
from caseshare.cli.admin import clients_app, keys_app
from caseshare.cli.audit import audit_app
from caseshare.cli.client import EXIT_CODES_HELP, Settings, fetch_token
from caseshare.cli.demo import demo
from caseshare.cli.kafka import kafka_app
from caseshare.cli.ui import CaseshareGroup, run, settings

app = typer.Typer(
    cls=CaseshareGroup,
    help="caseshare: the cross-border case-sharing broker.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")
app.add_typer(kafka_app, name="kafka")
app.add_typer(cases.app, name="cases", epilog=EXIT_CODES_HELP)
app.add_typer(responses.app, name="responses", epilog=EXIT_CODES_HELP)
app.add_typer(inbox.app, name="inbox", epilog=EXIT_CODES_HELP)
app.add_typer(fanout.app, name="fanout", epilog=EXIT_CODES_HELP)
app.add_typer(requests.app, name="requests", epilog=EXIT_CODES_HELP)
app.add_typer(platform.app, name="platform", epilog=EXIT_CODES_HELP)
app.add_typer(evidence.app, name="evidence", epilog=EXIT_CODES_HELP)
app.command(epilog=EXIT_CODES_HELP)(demo)

StateDir = Annotated[
    Path, typer.Option("--state-dir", envvar="CASESHARE_STATE_DIR", help="where state lives")
]


@app.callback()
def options(
    ctx: typer.Context,
    intake_url: Annotated[
        str, typer.Option(envvar="CASESHARE_INTAKE_URL", help="intake's base URL")
    ] = Settings.intake_url,
    registry_url: Annotated[
        str, typer.Option(envvar="CASESHARE_REGISTRY_URL", help="the registry's base URL")
    ] = Settings.registry_url,
    issuer: Annotated[
        str, typer.Option(envvar=["CASESHARE_ISSUER", "OAUTH_ISSUER"], help="OAuth issuer URL")
    ] = Settings.issuer,
    state_dir: Annotated[
        Path,
        typer.Option(
            envvar="CASESHARE_STATE_DIR", help="state of `make run`: dev clients, demo keys"
        ),
    ] = Settings.state_dir,
    bootstrap: Annotated[
        str,
        typer.Option(
            envvar=["CASESHARE_BOOTSTRAP", "KAFKA_BOOTSTRAP_SERVERS"],
            help="Kafka bootstrap; TLS and SASL from KAFKA_SECURITY_PROTOCOL, KAFKA_SSL_*"
            " and KAFKA_SASL_* as for the services",
        ),
    ] = Settings.bootstrap,
    topic_prefix: Annotated[
        str, typer.Option(envvar="KAFKA_TOPIC_PREFIX", help="Kafka topic prefix")
    ] = Settings.topic_prefix,
) -> None:
    """Where the hub runs; the defaults match `make run`."""
    ctx.obj = Settings(
        intake_url=intake_url,
        registry_url=registry_url,
        issuer=issuer,
        state_dir=state_dir,
        bootstrap=bootstrap,
        topic_prefix=topic_prefix,
    )


@app.command()
def up(state_dir: StateDir = Path(".state")) -> None:
    """Start PostgreSQL, the broker, the issuer and the three services; Ctrl-C stops all."""
    from caseshare.stack.up import up as run_up

    raise typer.Exit(run_up(state_dir))


@app.command(epilog=EXIT_CODES_HELP)
def token(
    ctx: typer.Context,
    client_id: Annotated[str, typer.Argument(help="e.g. authority-fr, platform-telegram")],
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="overrides the global --state-dir")
    ] = None,
    issuer: Annotated[str | None, typer.Option(help="overrides the global --issuer")] = None,
    scope: Annotated[str | None, typer.Option(help="space-separated subset of scopes")] = None,
) -> None:
    """Print an access token for a dev client of the embedded issuer."""
    cfg = settings(ctx)
    cfg = replace(cfg, issuer=issuer or cfg.issuer, state_dir=state_dir or cfg.state_dir)
    typer.echo(run(fetch_token(cfg, client_id, scope=scope)))


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
