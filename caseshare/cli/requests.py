"""`caseshare requests`: an authority issues legal orders to platforms and follows them.

The issuer is whoever the token says (`--as authority-fr`). The order names selectors in clear
because the platform needs them; the CLI prints them only back to the authority that sent them.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from caseshare.cli.cases import parse_selector
from caseshare.cli.client import Api
from caseshare.cli.ui import console, print_json, run, settings, styled, when

app = typer.Typer(help="Issue legal requests to platforms and follow them.", no_args_is_help=True)

As = Annotated[str, typer.Option("--as", help="dev client to act as, e.g. authority-fr")]
JsonOut = Annotated[bool, typer.Option("--json", help="print the API's JSON instead of a table")]


async def issue_request(
    api: Api, body: dict[str, Any], *, idempotency_key: str | None = None
) -> dict[str, Any]:
    """POST /v1/requests; the answer is the request with its history."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    answer = await api.call(
        "POST", "intake", "/v1/requests", what="request", json_body=body, headers=headers
    )
    result: dict[str, Any] = answer.json()
    return result


async def step(api: Api, path: str, what: str, body: dict[str, Any] | None = None) -> Any:
    """POST one step of a request's life; returns the request as it now is."""
    return (await api.call("POST", "intake", path, what=what, json_body=body)).json()


def request_panel(req: dict[str, Any]) -> Table:
    """One request, then its history, as tables."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        ("id", req["id"]),
        ("type", req["type"]),
        ("state", styled(req["state"])),
        ("case", req["case_id"]),
        ("platform", req["platform"]),
        ("issued by", f"{req['issued_by']} ({req['issuing_authority']})"),
        ("enforcing state", f"{req['enforcing_jurisdiction']} (review {req['review_state']})"),
        ("categories", ", ".join(req["categories"])),
        ("validated by", req.get("validated_by") or "-"),
        ("deadline", when(req["deadline_at"]) + (" (clock stopped)" if req["paused"] else "")),
    ]
    for name, value in rows:
        table.add_row(name, value if name == "state" else escape(str(value)))
    for h in req.get("history") or []:
        table.add_row(when(h["at"]), escape(f"{h['action']} by {h['actor']} → {h['to_state']}"))
    return table


@app.command("issue")
def issue(
    ctx: typer.Context,
    as_client: As,
    case: Annotated[uuid.UUID, typer.Option(help="your open case the order is issued on")],
    platform: Annotated[str, typer.Option(help="the case's platform, e.g. telegram")],
    selector: Annotated[list[str], typer.Option(help="KIND=VALUE of the case (repeatable)")],
    category: Annotated[
        list[str], typer.Option(help="subscriber, identification, traffic or content")
    ],
    legal_basis: Annotated[str, typer.Option(help="the legal basis of the order")],
    authority: Annotated[str, typer.Option(help="the issuing authority's name")],
    kind: Annotated[
        str, typer.Option("--type", help="production, emergency_production or preservation")
    ] = "production",
    validated_by: Annotated[
        str | None, typer.Option(help="validating judge or court (traffic and content data)")
    ] = None,
    follows: Annotated[
        uuid.UUID | None, typer.Option(help="the preservation this production follows")
    ] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="retries return the first")] = None,
    json_out: JsonOut = False,
) -> None:
    """Issue a production, emergency production or preservation order."""
    body: dict[str, Any] = {
        "case_id": str(case),
        "type": kind,
        "platform": platform,
        "categories": category,
        "selectors": [parse_selector(s) for s in selector],
        "legal_basis": legal_basis,
        "issuing_authority": authority,
        "validated_by": validated_by,
        "follows_request_id": str(follows) if follows else None,
    }
    req = run(issue_request(Api(settings(ctx), as_client), body, idempotency_key=idempotency_key))
    if json_out:
        print_json(req)
        return
    console.print(f"[green]issued[/] {req['type']} order [bold]{req['id']}[/]")
    console.print(request_panel(req))


@app.command("list")
def list_(
    ctx: typer.Context,
    as_client: As,
    case: Annotated[uuid.UUID | None, typer.Option(help="only requests on this case")] = None,
    state: Annotated[str | None, typer.Option(help="only requests in this state")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 50,
    json_out: JsonOut = False,
) -> None:
    """Your requests and those you review as enforcing state, newest first."""
    api = Api(settings(ctx), as_client)
    params = {"case_id": str(case) if case else None, "state": state, "limit": limit}
    page = run(api.get("intake", "/v1/requests", what="request list", **params))
    if json_out:
        print_json(page["items"])
        return
    table = Table(title=f"{len(page['items'])} request(s), newest first")
    for name in ("id", "type", "state", "platform", "issued by", "deadline"):
        table.add_column(name, no_wrap=name == "id")
    for r in page["items"]:
        table.add_row(
            r["id"],
            r["type"],
            styled(r["state"]),
            r["platform"],
            r["issued_by"],
            when(r["deadline_at"]),
        )
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context, request_id: uuid.UUID, as_client: As, json_out: JsonOut = False
) -> None:
    """One request with its full history."""
    api = Api(settings(ctx), as_client)
    req = run(api.get("intake", f"/v1/requests/{request_id}", what=f"request {request_id}"))
    if json_out:
        print_json(req)
    else:
        console.print(request_panel(req))


@app.command("withdraw")
def withdraw(
    ctx: typer.Context,
    request_id: uuid.UUID,
    as_client: As,
    reason: Annotated[str | None, typer.Option(help="why, for the record")] = None,
) -> None:
    """Withdraw one of your orders; its clocks stop."""
    api = Api(settings(ctx), as_client)
    path = f"/v1/requests/{request_id}/withdraw"
    req = run(step(api, path, f"request {request_id}", {"reason": reason}))
    console.print(f"request [bold]{req['id']}[/] is {styled(req['state'])}")


@app.command("extend")
def extend(ctx: typer.Context, request_id: uuid.UUID, as_client: As) -> None:
    """Extend a preservation once, by 30 days."""
    api = Api(settings(ctx), as_client)
    req = run(step(api, f"/v1/requests/{request_id}/extend", f"request {request_id}"))
    console.print(f"preservation [bold]{req['id']}[/] now runs until {when(req['deadline_at'])}")
