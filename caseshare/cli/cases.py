"""`caseshare cases`: register, list and show an authority's own cases over intake's REST API.

The opener is whoever the token says (`--as authority-fr`), never an option, exactly as the API
enforces. Selectors are shown masked as intake returns them; the CLI never sees them in clear
after registration.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from caseshare.cli.client import Api
from caseshare.cli.ui import console, print_json, run, settings, styled, when

app = typer.Typer(help="Register and read your jurisdiction's cases.", no_args_is_help=True)

As = Annotated[str, typer.Option("--as", help="dev client to act as, e.g. authority-fr")]
JsonOut = Annotated[bool, typer.Option("--json", help="print the API's JSON instead of a table")]
PAGE = 100


def parse_selector(raw: str) -> dict[str, str]:
    """`kind=value` (split at the first `=`, so values may contain `=`)."""
    kind, sep, value = raw.partition("=")
    if not sep or not kind.strip() or not value.strip():
        raise typer.BadParameter(
            f"{raw!r}: expected KIND=VALUE, e.g. group_id=fraud_ring_chat", param_hint="--selector"
        )
    return {"kind": kind.strip(), "value": value.strip()}


def case_body(
    *,
    reference: str,
    platform: str,
    legal_basis: str,
    offences: list[str],
    selectors: list[str],
    coordinator: str | None = None,
    lead_case: uuid.UUID | None = None,
    emergency: bool = False,
) -> dict[str, Any]:
    """The JSON intake expects for a new case (see `CaseCreate`)."""
    body: dict[str, Any] = {
        "reference": reference,
        "platform": platform,
        "legal_basis": legal_basis,
        "offence_categories": offences,
        "selectors": [parse_selector(s) for s in selectors],
        "emergency": emergency,
    }
    if coordinator:
        body["coordinating_jurisdiction"] = coordinator.upper()
    if lead_case:
        body["lead_case_id"] = str(lead_case)
    return body


async def register_case(
    api: Api, body: dict[str, Any], *, idempotency_key: str | None = None
) -> dict[str, Any]:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    answer = await api.call(
        "POST", "intake", "/v1/cases", what="case registration", json_body=body, headers=headers
    )
    result: dict[str, Any] = answer.json()
    return result


def case_panel(case: dict[str, Any]) -> Table:
    """One case as a two-column table; selectors appear masked, as intake returns them."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    selectors = ", ".join(f"{s['kind']}={s['masked']}" for s in case.get("selectors", []))
    rows = [
        ("id", case["id"]),
        ("reference", case["reference"]),
        ("opened by", case["opened_by"]),
        ("platform", case["platform"]),
        ("status", styled(case["status"])),
        ("coordinator", case.get("coordinating_jurisdiction") or "-"),
        ("lead case", case.get("lead_case_id") or "-"),
        ("offences", ", ".join(case.get("offence_categories", []))),
        ("legal basis", case.get("legal_basis", "")),
        ("selectors", selectors),
        ("emergency", "yes" if case.get("emergency") else "no"),
        ("version", str(case.get("version", ""))),
        ("created", when(case.get("created_at"))),
    ]
    for name, value in rows:
        table.add_row(name, value if name == "status" else escape(str(value)))
    return table


@app.command("register")
def register(
    ctx: typer.Context,
    as_client: As,
    platform: Annotated[str, typer.Option(help="platform slug, e.g. telegram")],
    reference: Annotated[str, typer.Option(help="your reference for the case")],
    legal_basis: Annotated[str, typer.Option(help="the legal basis of the request")],
    offence: Annotated[list[str], typer.Option(help="offence category (repeatable)")],
    selector: Annotated[list[str], typer.Option(help="KIND=VALUE, e.g. group_id=foo (repeatable)")],
    coordinator: Annotated[
        str | None, typer.Option(help="coordinating jurisdiction (needed by associated ones)")
    ] = None,
    lead_case: Annotated[uuid.UUID | None, typer.Option(help="lead case this joins")] = None,
    emergency: Annotated[bool, typer.Option("--emergency", help="flag as an emergency")] = False,
    idempotency_key: Annotated[
        str | None, typer.Option(help="retrying with the same key returns the first result")
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Register a case for your jurisdiction; links to other jurisdictions' cases are
    announced on your inbox topic (see `caseshare inbox tail`)."""
    body = case_body(
        reference=reference,
        platform=platform,
        legal_basis=legal_basis,
        offences=offence,
        selectors=selector,
        coordinator=coordinator,
        lead_case=lead_case,
        emergency=emergency,
    )
    api = Api(settings(ctx), as_client)
    case = run(register_case(api, body, idempotency_key=idempotency_key))
    if json_out:
        print_json(case)
        return
    console.print(f"[green]registered[/] case [bold]{escape(case['reference'])}[/]")
    console.print(case_panel(case))


@app.command("show")
def show(ctx: typer.Context, case_id: uuid.UUID, as_client: As, json_out: JsonOut = False) -> None:
    """Show one of your cases (another jurisdiction's case is "not found")."""
    api = Api(settings(ctx), as_client)
    case = run(api.get("intake", f"/v1/cases/{case_id}", what=f"case {case_id}"))
    if json_out:
        print_json(case)
    else:
        console.print(case_panel(case))


async def list_cases(
    api: Api, *, limit: int | None, filters: dict[str, str | None], progress: Progress | None
) -> tuple[list[dict[str, Any]], bool]:
    """Follow next_cursor until `limit` cases (or all of them); says whether more remain."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    task = progress.add_task("fetching cases", total=None) if progress else None
    while True:
        size = PAGE if limit is None else min(PAGE, limit - len(items))
        page = await api.get(
            "intake", "/v1/cases", what="case list", limit=size, cursor=cursor, **filters
        )
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if progress is not None and task is not None:
            progress.update(task, completed=len(items), description=f"{len(items)} cases")
        if cursor is None:
            return items, False
        if limit is not None and len(items) >= limit:
            return items, True


def cases_table(items: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(items)} case(s), newest first")
    for name in ("id", "reference", "platform", "status", "coordinator", "selectors", "created"):
        table.add_column(name, no_wrap=name == "id")
    for case in items:
        flag = " [red]![/]" if case.get("emergency") else ""
        table.add_row(
            case["id"],
            escape(case["reference"]) + flag,
            case["platform"],
            styled(case["status"]),
            case.get("coordinating_jurisdiction") or "-",
            str(len(case.get("selectors", []))),
            when(case.get("created_at")),
        )
    return table


@app.command("list")
def list_(
    ctx: typer.Context,
    as_client: As,
    platform: Annotated[str | None, typer.Option(help="only cases against this platform")] = None,
    status: Annotated[str | None, typer.Option(help="open, suspended or closed")] = None,
    limit: Annotated[int, typer.Option(min=1, help="show at most this many")] = 50,
    all_: Annotated[
        bool, typer.Option("--all", help="follow every page (ignores --limit)")
    ] = False,
    json_out: JsonOut = False,
) -> None:
    """List your cases, newest first."""
    api = Api(settings(ctx), as_client)
    filters = {"platform": platform, "status": status}
    if all_ and not json_out:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            items, more = run(list_cases(api, limit=None, filters=filters, progress=progress))
    else:
        items, more = run(
            list_cases(api, limit=None if all_ else limit, filters=filters, progress=None)
        )
    if json_out:
        print_json(items)
        return
    console.print(cases_table(items))
    if more:
        console.print("[dim]more cases exist: raise --limit or pass --all[/]")
