"""`caseshare fanout show`: who received a response, who was refused and why, optionally live.

It reads the registry's coordinator API (metadata only: recipients, rules, states, times and
exclusion reasons, never disclosed data). `--live` follows the registry's Server-Sent Events
for the response and redraws on every event, re-reading the fan-out so the table is always the
registry's committed truth rather than a client-side tally of events.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any

import httpx
import typer
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from caseshare.cli.client import Api
from caseshare.cli.ui import console, print_json, run, settings, styled, when

app = typer.Typer(help="Watch a response's fan-out (as the coordination desk).")

COORDINATOR = "coordinator"
FINAL = frozenset({"acknowledged", "failed"})
REFRESH_SECONDS = 2.0
# Exclusions for this reason are everyone without a case: shown as one summary row by default.
ROUTINE_REASON = "no_open_case"

Fanout = dict[str, Any]


async def fetch(api: Api, response_id: uuid.UUID) -> Fanout:
    path = f"/v1/registry/responses/{response_id}/fanout"
    result: Fanout = await api.get("registry", path, what=f"fan-out of {response_id}")
    return result


def settled(fanout: Fanout) -> bool:
    """Routed, and every recipient's delivery is on its inbox topic (or has failed)."""
    deliveries = fanout["deliveries"]
    return fanout["response"]["fanout_state"] != "received" and all(
        d["state"] != "pending" for d in deliveries
    )


def closed(fanout: Fanout) -> bool:
    """Routed, and every delivery was acknowledged by its recipient (or failed)."""
    deliveries = fanout["deliveries"]
    return fanout["response"]["fanout_state"] != "received" and all(
        d["state"] in FINAL for d in deliveries
    )


def recipients_table(fanout: Fanout) -> Table:
    deliveries = sorted(fanout["deliveries"], key=lambda d: d["jurisdiction"])
    table = Table(title=f"recipients ({len(deliveries)})", title_justify="left")
    for name in ("jurisdiction", "rule", "state", "attempts", "published", "acknowledged"):
        table.add_column(name)
    for d in deliveries:
        table.add_row(
            f"[bold]{d['jurisdiction']}[/]",
            escape(d["rule"]),
            styled(d["state"]),
            str(d["attempts"]),
            when(d.get("published_at")),
            when(d.get("acknowledged_at") or d.get("failed_at")),
        )
    return table


def exclusions_table(fanout: Fanout, *, every: bool = False) -> Table:
    """Each exclusion with its reason; the routine "no open case" ones folded unless `every`."""
    exclusions = sorted(fanout["exclusions"], key=lambda e: e["jurisdiction"])
    table = Table(title=f"exclusions ({len(exclusions)})", title_justify="left")
    table.add_column("jurisdiction")
    table.add_column("reason")
    table.add_column("detail", overflow="fold")
    routine = [e for e in exclusions if e["reason"] == ROUTINE_REASON and not every]
    for e in exclusions:
        if e in routine:
            continue
        table.add_row(f"[bold]{e['jurisdiction']}[/]", escape(e["reason"]), escape(e["detail"]))
    if routine:
        codes = " ".join(e["jurisdiction"] for e in routine)
        table.add_row(
            f"{len(routine)} others",
            ROUTINE_REASON,
            f"no open case on this platform that the response concerns: {codes}",
        )
    return table


def render(fanout: Fanout, *, every: bool = False, note: str = "") -> Group:
    r = fanout["response"]
    head = (
        f"response [bold]{r['id']}[/] from {escape(r['platform'])} "
        f"(handling {r['handling_code']}{', emergency' if r.get('emergency') else ''}): "
        f"fan-out {styled(r['fanout_state'])}, received {when(r['received_at'])}, "
        f"routed {when(r.get('routed_at'))}"
    )
    parts: list[Any] = [head, recipients_table(fanout), exclusions_table(fanout, every=every)]
    if note:
        parts.append(f"[dim]{escape(note)}[/]")
    return Group(*parts)


async def _follow_stream(api: Api, response_id: uuid.UUID, changed: asyncio.Event) -> None:
    """Set `changed` on every fan-out event; reconnect (resuming by id) if the stream drops."""
    url = f"{api.settings.url('registry')}/v1/registry/stream"
    last_id: str | None = None
    timeout = httpx.Timeout(10.0, read=None)
    while True:
        headers = {"Authorization": f"Bearer {await api.token()}", "Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        try:
            async with (
                httpx.AsyncClient(timeout=timeout) as http,
                http.stream(
                    "GET", url, params={"response_id": str(response_id)}, headers=headers
                ) as answer,
            ):
                async for line in answer.aiter_lines():
                    if line.startswith("id:"):
                        last_id = line[3:].strip()
                    elif line == "":
                        changed.set()
        except httpx.TransportError:
            pass  # the periodic re-read keeps the table current; try the stream again shortly
        await asyncio.sleep(1.0)


async def watch(
    api: Api,
    response_id: uuid.UUID,
    *,
    until: Callable[[Fanout], bool] = closed,
    within: float | None = None,
    every: bool = False,
) -> tuple[Fanout, bool]:
    """Redraw the fan-out until `until` holds or `within` seconds pass; says whether it held."""
    fanout = await fetch(api, response_id)
    held = until(fanout)
    changed = asyncio.Event()
    follower = asyncio.create_task(_follow_stream(api, response_id, changed))
    deadline = None if within is None else time.monotonic() + within
    try:
        with Live(render(fanout, every=every), console=console, refresh_per_second=4) as live:
            while not held and (deadline is None or time.monotonic() < deadline):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), REFRESH_SECONDS)
                changed.clear()
                fanout = await fetch(api, response_id)
                held = until(fanout)
                note = "" if held else "live: Ctrl-C stops watching"
                live.update(render(fanout, every=every, note=note))
            if not held:
                live.update(render(fanout, every=every, note="stopped watching: timeout"))
        console.line()  # a file or a pipe gets the final frame without a trailing newline
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
    return fanout, held


@app.command("show")
def show(
    ctx: typer.Context,
    response_id: uuid.UUID,
    live: Annotated[
        bool, typer.Option("--live", help="follow until every delivery is acknowledged")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(help="with --live, stop watching after this many seconds")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all-exclusions", help="list every exclusion, even routine ones")
    ] = False,
    as_client: Annotated[str, typer.Option("--as", help="dev client")] = COORDINATOR,
    json_out: Annotated[bool, typer.Option("--json", help="print the API's JSON")] = False,
) -> None:
    """Show a response's recipients (state, times) and exclusions (reasons)."""
    api = Api(settings(ctx), as_client)
    if json_out:
        print_json(run(fetch(api, response_id)))
    elif not live:
        console.print(render(run(fetch(api, response_id)), every=every))
    else:
        try:
            run(watch(api, response_id, within=timeout, every=every))
        except KeyboardInterrupt:
            console.print("[dim]stopped watching[/]")
