"""`caseshare evidence verify FILE`: check a saved evidence bundle offline.

A bundle is what `GET /v1/responses/{id}/evidence` or `GET /v1/inbox/{id}/evidence` returned,
saved as JSON. Each record is a JWS by a hub signing key; the keys are the hub's evidence JWKS
(`/.well-known/evidence-jwks.json`), given as a file (fully offline) or a URL. Exit code 0 means
every record verified and is about the bundle's subject; 1 means something did not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from caseshare.cli.client import CliError, ExitCode, Settings, unreachable
from caseshare.cli.ui import console, settings

app = typer.Typer(help="Check signed evidence offline.", no_args_is_help=True)
JWKS_PATH = "/.well-known/evidence-jwks.json"


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CliError(f"no {what} at {path}", ExitCode.USAGE) from None
    except ValueError:
        raise CliError(f"{path} is not JSON", ExitCode.USAGE) from None


def load_jwks(source: str | None, cfg: Settings) -> dict[str, Any]:
    """The hub's signing keys from a file, a URL, or (default) intake's well-known document."""
    if source is not None and not source.startswith(("http://", "https://")):
        jwks = _read_json(Path(source), "JWKS")
    else:
        url = source or f"{cfg.url('intake')}{JWKS_PATH}"
        try:
            answer = httpx.get(url, timeout=10)
            answer.raise_for_status()
            jwks = answer.json()
        except httpx.HTTPError as exc:
            raise unreachable("intake", url, exc) from None
        except ValueError:
            raise CliError(f"{url} did not answer with JSON", ExitCode.UNEXPECTED) from None
    if not isinstance(jwks, dict):
        raise CliError("a JWKS must be a JSON object", ExitCode.USAGE)
    return jwks


@app.command("verify")
def verify_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="a saved evidence bundle (JSON)")],
    jwks: Annotated[
        str | None,
        typer.Option(help="hub evidence JWKS, file or URL [default: intake's, over HTTP]"),
    ] = None,
) -> None:
    """Verify every record of a bundle against the hub's published evidence keys."""
    from shared import evidence  # JOSE loads only when this runs

    bundle = _read_json(file, "bundle")
    keys = load_jwks(jwks, settings(ctx))
    try:
        claims = evidence.verify_bundle(bundle, keys)
    except evidence.VerificationFailed as exc:
        raise CliError(f"{file}: NOT verified: {exc}", ExitCode.REFUSED) from None
    table = Table(title=f"{escape(str(bundle['subject']))}: {len(claims)} record(s) verified")
    for name in ("at", "kind", "subject", "audit digest"):
        table.add_column(name, overflow="fold")
    for c in claims:
        subject = f"{c['subject_type']} {c['subject_id']}"
        table.add_row(escape(c["at"]), escape(c["kind"]), escape(subject), c["audit_digest"][:16])
    console.print(table)
