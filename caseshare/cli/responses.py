"""`caseshare responses submit`: a platform sends a cooperation response from a JSON file.

The file is the body of `POST /v1/responses` as the API documents it. What the CLI prints is
metadata only (id, fan-out state, how many records were disclosed): the disclosed data itself
is the platform's to send and the recipients' to read, never the terminal's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from caseshare.cli.client import Api, CliError, ExitCode
from caseshare.cli.ui import console, print_json, run, settings, styled

app = typer.Typer(help="Submit cooperation responses (as a platform).", no_args_is_help=True)


def read_body(path: Path) -> dict[str, Any]:
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise CliError(f"no such file: {path}", ExitCode.USAGE) from None
    except ValueError as exc:
        raise CliError(f"{path} is not valid JSON: {exc}", ExitCode.USAGE) from None
    if not isinstance(body, dict):
        raise CliError(f"{path} must hold a JSON object (the response body)", ExitCode.USAGE)
    return body


def record_count(body: dict[str, Any]) -> int:
    disclosures = body.get("disclosures")
    if not isinstance(disclosures, list):
        return 0
    return sum(len(d.get("records", [])) for d in disclosures if isinstance(d, dict))


async def submit_response(
    api: Api, body: dict[str, Any], *, idempotency_key: str | None = None
) -> tuple[dict[str, Any], bool]:
    """Submit a response; returns the acceptance and whether it replayed an earlier submit."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    answer = await api.call(
        "POST", "intake", "/v1/responses", what="response", json_body=body, headers=headers
    )
    return answer.json(), answer.headers.get("Idempotent-Replayed") == "true"


@app.command("submit")
def submit(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="the response body as JSON")],
    as_client: Annotated[str, typer.Option("--as", help="dev client, e.g. platform-telegram")],
    idempotency_key: Annotated[
        str | None, typer.Option(help="retrying with the same key returns the first result")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
) -> None:
    """Submit a cooperation response; fan-out to every jurisdiction with standing follows."""
    body = read_body(file)
    api = Api(settings(ctx), as_client)
    accepted, replayed = run(submit_response(api, body, idempotency_key=idempotency_key))
    if json_out:
        print_json(accepted | {"replayed": replayed})
        return
    verb = "already accepted (same Idempotency-Key)" if replayed else "accepted"
    console.print(
        f"[green]{verb}[/]: response [bold]{accepted['id']}[/] from "
        f"{escape(accepted['platform'])}, handling code {accepted['handling_code']}, "
        f"{record_count(body)} record(s) disclosed, fan-out {styled(accepted['fanout_state'])}"
    )
    console.print(f"follow it with: [bold]caseshare fanout show {accepted['id']} --live[/]")
