"""Reading a jurisdiction's Kafka inbox as its integrator would, for `inbox tail` and the demo.

Deliveries arrive at least once (the reconciler re-publishes anything unacknowledged under the
same CloudEvents `ce_id`), so this reader is exactly-once by id: the ids it has shown are kept
in the state directory and a redelivery is skipped. The consumer group is per jurisdiction and
an offset is committed only after its record was shown (and, with `--ack`, acknowledged), so an
interrupted tail resumes where it stopped. Decrypted disclosures are printed: showing the
recipient its own delivery is what this command is for.

Every delivery must carry the hub's signature inside its JWE (and the platform's, when the
platform signed): one failing either is rejected, never shown nor acknowledged, and its ce_id
is not remembered, so a forgery cannot shadow the real delivery.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from caseshare.cli.client import Api, CliError, ExitCode, Settings, unreachable
from caseshare.cli.ui import console, errors, when
from shared import sealing
from shared.events import CaseLinkFound, ResponseDelivered
from shared.kafka import Envelope, PoisonMessage, decode, make_consumer
from shared.kafka_security import client_kwargs

MAX_SEEN = 10_000


@dataclass
class Seen:
    """The ce_ids already shown for one jurisdiction, newest last, kept in a small JSON file."""

    path: Path
    ids: dict[str, None] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Seen:
        try:
            return cls(path, dict.fromkeys(json.loads(path.read_text())))
        except FileNotFoundError:
            return cls(path)
        except ValueError:
            message = f"{path} is corrupt; delete it to start afresh"
            raise CliError(message, ExitCode.USAGE) from None

    def __contains__(self, ce_id: str) -> bool:
        return ce_id in self.ids

    def add(self, ce_id: str) -> None:
        self.ids[ce_id] = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(list(self.ids)[-MAX_SEEN:]))
        tmp.replace(self.path)


def load_key(path: Path) -> dict[str, Any]:
    """A private JWK from a file; a missing or malformed file is a usage error."""
    try:
        key = json.loads(path.read_text())
    except FileNotFoundError:
        raise CliError(f"no key file at {path} (pass --key-file)", ExitCode.USAGE) from None
    except ValueError:
        raise CliError(f"{path} is not a JSON Web Key", ExitCode.USAGE) from None
    if not isinstance(key, dict) or "d" not in key:
        raise CliError(f"{path} does not hold a private JWK", ExitCode.USAGE)
    return key


class Rejected(Exception):
    """A delivery whose hub or platform signature does not verify."""


def open_delivery(
    event: ResponseDelivered, key: dict[str, Any], key_path: Path, hub_jwks: dict[str, Any]
) -> Any:
    """The delivery's disclosures in clear, checked; a key that does not open them is a usage
    error, a delivery the hub (or the platform) did not sign is Rejected."""
    if event.sealed_disclosures is None:
        return []
    token = event.sealed_disclosures
    try:
        ours = sealing.public_from_private(key)["kid"]
    except sealing.InvalidKey as exc:
        raise CliError(f"{key_path}: {exc}", ExitCode.USAGE) from None
    if sealing.sealed_for(token) != ours:
        raise CliError(
            f"{key_path} cannot open delivery {event.delivery_id} for {event.jurisdiction}:"
            " it was sealed for another key",
            ExitCode.USAGE,
        )
    try:
        opened = sealing.open_verified(token, key, hub_jwks, delivery_id=str(event.delivery_id))
    except sealing.SealError as exc:
        raise Rejected(str(exc)) from None
    return opened.disclosures


def delivery_panel(event: ResponseDelivered, disclosures: Any, acked: str | None) -> Panel:
    """A delivery with its decrypted records, for the recipient's own eyes."""
    table = Table(box=None, pad_edge=False)
    for name in ("selector", "category", "type", "value", "observed"):
        table.add_column(name, overflow="fold")
    for disclosure in disclosures if isinstance(disclosures, list) else []:
        selector = disclosure.get("selector", {})
        for record in disclosure.get("records", []):
            table.add_row(
                escape(f"{selector.get('kind')}={selector.get('value')}"),
                escape(str(disclosure.get("category", ""))),
                escape(str(record.get("type", ""))),
                escape(str(record.get("value", ""))),
                when(record.get("observed_at")),
            )
    head = (
        f"response {event.response_id} from {escape(event.platform)} for your case "
        f"[bold]{escape(event.case_reference)}[/] (rule {event.rule}, handling "
        f"{event.handling_code}{', EMERGENCY' if event.emergency else ''}), issued "
        f"{when(event.issued_at)}; {event.disclosure_count} disclosure(s), decrypted with "
        f"key {event.recipient_kid}"
    )
    status = f"[green]acknowledged {when(acked)}[/]" if acked else "[yellow]not acknowledged[/]"
    return Panel(
        _stack(head, table),
        title=f"delivery {event.delivery_id} to {event.jurisdiction}",
        subtitle=status,
        title_align="left",
        subtitle_align="right",
        border_style="green",
    )


def _stack(head: str, table: Table) -> Table:
    outer = Table.grid()
    outer.add_row(head)
    outer.add_row(table)
    return outer


def link_notice(event: CaseLinkFound) -> str:
    """Hit/no-hit: which jurisdiction shares a selector, never which case (until consent)."""
    return (
        f"[magenta]link found[/] for {event.jurisdiction}: an open case of "
        f"{event.other_jurisdiction} on {escape(event.platform)} shares a selector with one of "
        f"yours (link {event.link_id}; consent with POST /v1/links/{event.link_id}/consent)"
    )


async def acknowledge(api: Api, delivery_id: str) -> str:
    answer = await api.call(
        "POST", "intake", f"/v1/inbox/{delivery_id}/ack", what=f"ack of {delivery_id}"
    )
    acked: str = answer.json()["acknowledged_at"]
    return acked


class _Rewind(ConsumerRebalanceListener):  # type: ignore[misc]
    """Seeks every newly assigned partition to its first record (for --from-beginning)."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:  # noqa: ARG002
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if assigned:
            await self.consumer.seek_to_beginning(*assigned)


@dataclass
class Tail:
    """One `inbox tail` run: what it reads, how it opens and acknowledges, what it has shown."""

    settings: Settings
    jurisdiction: str
    key: dict[str, Any]
    key_path: Path
    seen: Seen
    hub_jwks: dict[str, Any] = field(default_factory=dict)
    ack_api: Api | None = None
    replay: bool = False
    shown: int = 0
    rejected: int = 0
    _this_run: set[str] = field(default_factory=set)

    async def handle(self, envelope: Envelope) -> None:
        """Show one record once by ce_id; acknowledge deliveries when asked to."""
        ce_id = envelope.ce_id
        if ce_id in self._this_run or (not self.replay and ce_id in self.seen):
            console.print(f"[dim]skipped {ce_id}: already seen (redelivery)[/]")
            return
        event = envelope.event
        if isinstance(event, ResponseDelivered):
            try:
                disclosures = open_delivery(event, self.key, self.key_path, self.hub_jwks)
            except Rejected as exc:
                errors.print(f"[red]rejected delivery {escape(ce_id)}: {escape(str(exc))}[/]")
                self.rejected += 1
                return
            acked = await acknowledge(self.ack_api, ce_id) if self.ack_api else None
            console.print(delivery_panel(event, disclosures, acked))
        elif isinstance(event, CaseLinkFound):
            console.print(link_notice(event))
        else:
            console.print(f"[dim]ignored {escape(envelope.ce_type)} {ce_id}[/]")
            return
        self._this_run.add(ce_id)
        self.seen.add(ce_id)
        self.shown += 1


async def tail(
    run_: Tail, *, group: str, count: int | None, idle: float | None, replay: bool
) -> None:
    """Consume until `count` records were shown or nothing arrived for `idle` seconds."""
    topic = run_.settings.inbox_topic(run_.jurisdiction)
    consumer = make_consumer(run_.settings.kafka(), group_id=group, client_id=group)
    consumer.subscribe([topic], listener=_Rewind(consumer) if replay else None)
    try:
        await consumer.start()
    except KafkaConnectionError as exc:
        raise unreachable("broker", run_.settings.bootstrap, exc) from None
    console.print(f"[dim]reading {topic} as group {group}[/]")
    try:
        quiet_since = time.monotonic()
        while count is None or run_.shown < count:
            batch = await consumer.getmany(timeout_ms=500)
            if not batch:
                if idle is not None and time.monotonic() - quiet_since > idle:
                    console.print(f"[dim]nothing new for {idle:g} s; stopping[/]")
                    return
                continue
            quiet_since = time.monotonic()
            for tp, records in batch.items():
                for record in records:
                    if count is not None and run_.shown >= count:
                        return  # later records stay uncommitted for the next run
                    try:
                        await run_.handle(decode(record.value, record.headers))
                    except PoisonMessage as exc:
                        errors.print(
                            f"[yellow]unreadable record at {tp.partition}/"
                            f"{record.offset}: {escape(str(exc))}[/]"
                        )
                    await consumer.commit({tp: record.offset + 1})
    except KafkaError as exc:
        raise unreachable("broker", run_.settings.bootstrap, exc) from None
    finally:
        await consumer.stop()


async def peek(
    cfg: Settings,
    jurisdiction: str,
    *,
    match: Callable[[Envelope], bool],
    expect: int,
    within: float,
) -> list[Envelope]:
    """Matching records of an inbox topic, read from the start without a consumer group.

    For the demo: it shows what landed in each inbox without moving anyone's offsets.
    """
    consumer = AIOKafkaConsumer(
        cfg.inbox_topic(jurisdiction),
        **client_kwargs(cfg.kafka()),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=25,
    )
    try:
        await consumer.start()
    except KafkaConnectionError as exc:
        raise unreachable("broker", cfg.bootstrap, exc) from None
    found: dict[str, Envelope] = {}
    deadline = time.monotonic() + within
    try:
        while len(found) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for record in (r for rs in batch.values() for r in rs):
                try:
                    envelope = decode(record.value, record.headers)
                except PoisonMessage:
                    continue
                if match(envelope):
                    found.setdefault(envelope.ce_id, envelope)
    finally:
        await consumer.stop()
    return list(found.values())
