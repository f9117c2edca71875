"""`caseshare inbox tail`: follow a jurisdiction's Kafka inbox, decrypt, optionally acknowledge.

Deliveries arrive at least once, so the reader is exactly-once by CloudEvents `ce_id`: the ids
it has shown are kept under the state directory and a redelivery is skipped. The consumer
group is per jurisdiction and offsets are committed only after a record was shown (and, with
`--ack`, acknowledged). The Kafka reader lives in `inbox_reader` and is imported when the
command runs, so `caseshare token` and `caseshare up` do not pay for aiokafka and joserfc.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from caseshare.cli.client import Api
from caseshare.cli.ui import console, run, settings

app = typer.Typer(help="Read your jurisdiction's inbox topic.", no_args_is_help=True)


@app.command("tail")
def tail_command(
    ctx: typer.Context,
    jurisdiction: Annotated[str, typer.Option(help="ISO code of your inbox, e.g. FR")],
    key_file: Annotated[
        Path | None, typer.Option(help="private JWK [default: STATE/keys/<CC>.private.jwk.json]")
    ] = None,
    ack: Annotated[bool, typer.Option("--ack", help="acknowledge each delivery over REST")] = False,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="replay the topic, showing seen ids again")
    ] = False,
    count: Annotated[int | None, typer.Option(min=1, help="stop after this many")] = None,
    timeout: Annotated[
        float | None, typer.Option(help="stop after this many seconds without a new record")
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="consumer group [default: caseshare-cli-<CC>]")
    ] = None,
    as_client: Annotated[
        str | None, typer.Option("--as", help="dev client for --ack [default: authority-<cc>]")
    ] = None,
    hub_jwks: Annotated[
        str | None,
        typer.Option(help="hub signing keys, file or URL [default: intake's evidence JWKS]"),
    ] = None,
) -> None:
    """Follow your inbox: decrypt each delivery, show link notices, optionally acknowledge."""
    from caseshare.cli import inbox_reader  # Kafka and JOSE load only when this runs
    from caseshare.cli.evidence import load_jwks

    cfg = settings(ctx)
    code = jurisdiction.upper()
    if len(code) != 2 or not code.isalpha():
        raise typer.BadParameter("an ISO 3166-1 alpha-2 code, e.g. FR", param_hint="--jurisdiction")
    key_path = key_file or cfg.key_file(code)
    ack_api = Api(cfg, as_client or f"authority-{code.lower()}") if ack else None
    reader = inbox_reader.Tail(
        settings=cfg,
        jurisdiction=code,
        key=inbox_reader.load_key(key_path),
        key_path=key_path,
        seen=inbox_reader.Seen.load(cfg.state_dir / "cli" / f"inbox-{code}-seen.json"),
        hub_jwks=load_jwks(hub_jwks, cfg),
        ack_api=ack_api,
        replay=from_beginning,
    )
    consumer_group = group or f"caseshare-cli-{code}"
    with contextlib.suppress(KeyboardInterrupt):
        run(
            inbox_reader.tail(
                reader, group=consumer_group, count=count, idle=timeout, replay=from_beginning
            )
        )
    console.print(f"[dim]{reader.shown} record(s) shown, {reader.rejected} rejected[/]")
