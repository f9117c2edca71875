"""The `caseshare` command line: run the stack, get tokens, operate the hub."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import httpx
import typer

from shared.cli.admin import clients_app, keys_app
from shared.cli.audit import audit_app

app = typer.Typer(help="caseshare: the cross-border case-sharing broker.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")

StateDir = Annotated[
    Path, typer.Option("--state-dir", envvar="CASESHARE_STATE_DIR", help="where state lives")
]


@app.command()
def up(state_dir: StateDir = Path(".state")) -> None:
    """Start PostgreSQL, the broker, the issuer and the three services; Ctrl-C stops all."""
    from shared.cli.stack import up as run_up

    raise typer.Exit(run_up(state_dir))


@app.command()
def token(
    client_id: Annotated[str, typer.Argument(help="e.g. authority-fr, platform-telegram")],
    state_dir: StateDir = Path(".state"),
    issuer: Annotated[str, typer.Option(envvar="OAUTH_ISSUER")] = "http://127.0.0.1:8003",
    scope: Annotated[str | None, typer.Option(help="space-separated subset of scopes")] = None,
) -> None:
    """Print an access token for a dev client of the embedded issuer."""
    secrets_file = state_dir / "dev-clients.json"
    try:
        secret = json.loads(secrets_file.read_text())[client_id]
    except FileNotFoundError:
        typer.echo(f"no dev clients at {secrets_file}: is `caseshare up` running?", err=True)
        raise typer.Exit(2) from None
    except KeyError:
        typer.echo(f"unknown dev client {client_id!r}; see {secrets_file}", err=True)
        raise typer.Exit(2) from None
    form = {"grant_type": "client_credentials"}
    if scope:
        form["scope"] = scope
    try:
        answer = httpx.post(f"{issuer}/token", data=form, auth=(client_id, secret), timeout=10)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the issuer at {issuer}: {exc}", err=True)
        raise typer.Exit(3) from None
    if answer.status_code != 200:
        typer.echo(f"token request refused ({answer.status_code}): {answer.text}", err=True)
        raise typer.Exit(1)
    typer.echo(answer.json()["access_token"])


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
