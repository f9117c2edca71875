"""`caseshare platform`: a platform's law-enforcement response team works its orders.

`inbox` lists what it has been asked, `ack`, `clarify` and `refuse` answer the order itself,
and `respond` submits the cooperation response that answers it (`request_id` set), whose
fan-out then follows as for any response.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from caseshare.cli.client import Api
from caseshare.cli.requests import step
from caseshare.cli.responses import read_body, submit_response
from caseshare.cli.ui import console, print_json, run, settings, styled, when

app = typer.Typer(help="Work a platform's legal requests (as a platform).", no_args_is_help=True)

As = Annotated[str, typer.Option("--as", help="dev client to act as, e.g. platform-telegram")]


def _path(request_id: uuid.UUID, action: str) -> str:
    return f"/v1/platform/requests/{request_id}/{action}"


@app.command("inbox")
def inbox(
    ctx: typer.Context,
    as_client: As,
    state: Annotated[str | None, typer.Option(help="only requests in this state")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 50,
    json_out: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
) -> None:
    """The orders addressed to you, newest first."""
    api = Api(settings(ctx), as_client)
    page = run(api.get("intake", "/v1/platform/requests", what="inbox", state=state, limit=limit))
    if json_out:
        print_json(page["items"])
        return
    table = Table(title=f"{len(page['items'])} order(s), newest first")
    for name in ("id", "type", "state", "from", "categories", "deadline"):
        table.add_column(name, no_wrap=name == "id")
    for r in page["items"]:
        table.add_row(
            r["id"],
            r["type"],
            styled(r["state"]),
            r["issued_by"],
            ", ".join(r["categories"]),
            when(r["deadline_at"]),
        )
    console.print(table)


@app.command("ack")
def ack(ctx: typer.Context, request_id: uuid.UUID, as_client: As) -> None:
    """Acknowledge receipt of an order."""
    req = run(step(Api(settings(ctx), as_client), _path(request_id, "acknowledge"), "request"))
    console.print(f"order [bold]{req['id']}[/] is {styled(req['state'])}")


@app.command("clarify")
def clarify(
    ctx: typer.Context,
    request_id: uuid.UUID,
    as_client: As,
    ground: Annotated[
        str, typer.Option(help="incomplete, manifest_errors or insufficient_information")
    ],
    detail: Annotated[str, typer.Option(help="what is missing or wrong")],
) -> None:
    """Ask the authority for clarification (Annex III); the clock stops until it answers."""
    body = {"ground": ground, "detail": detail}
    api = Api(settings(ctx), as_client)
    req = run(step(api, _path(request_id, "request-clarification"), "request", body))
    console.print(f"order [bold]{req['id']}[/] is {styled(req['state'])}, clock stopped")


@app.command("refuse")
def refuse(
    ctx: typer.Context,
    request_id: uuid.UUID,
    as_client: As,
    ground: Annotated[
        str,
        typer.Option(
            help="de_facto_impossibility, data_not_held, force_majeure,"
            " conflict_with_third_country_law or other"
        ),
    ],
    detail: Annotated[str, typer.Option(help="the explanation")],
) -> None:
    """Refuse an order on an enumerated ground."""
    body = {"ground": ground, "detail": detail}
    req = run(step(Api(settings(ctx), as_client), _path(request_id, "refuse"), "request", body))
    console.print(f"order [bold]{req['id']}[/] is {styled(req['state'])}")


@app.command("respond")
def respond(
    ctx: typer.Context,
    request_id: uuid.UUID,
    file: Annotated[Path, typer.Argument(help="the response body as JSON")],
    as_client: As,
) -> None:
    """Answer an order with a cooperation response (its `request_id` is set for you)."""
    body = read_body(file) | {"request_id": str(request_id)}
    accepted, _ = run(submit_response(Api(settings(ctx), as_client), body))
    console.print(
        f"[green]accepted[/]: response [bold]{accepted['id']}[/] answers {request_id}, "
        f"fan-out {styled(accepted['fanout_state'])}"
    )
