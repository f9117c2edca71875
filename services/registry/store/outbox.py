"""Writing events to the transactional outbox: they commit or roll back with the change."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.store import bulk
from services.registry.store.models import OutboxEvent
from shared import tracing
from shared.events import Event, Topic, topic_name

# The channel the outbox relay listens on: the outbox trigger notifies it (migrations 0001 and
# 0016), and so does intake after a one-statement registration (`cases/wake.py`).
CHANNEL = "caseshare_outbox"


def add(
    session: AsyncSession,
    event: Event,
    *,
    key: str,
    subject: str | None,
    prefix: str,
    jurisdiction: str | None = None,
    event_id: uuid.UUID | None = None,
    family: Topic | None = None,
    platform: str | None = None,
) -> OutboxEvent:
    """Queue `event` for publication on its topic (or on `family`, one of its other channels);
    the relay publishes after commit."""
    row = OutboxEvent(
        event_id=event_id or uuid.uuid4(),
        topic=topic_name(prefix, family or event.TOPIC, jurisdiction, platform=platform),
        key=key,
        event_type=event.TYPE,
        subject=subject,
        payload=event.model_dump(mode="json"),
        traceparent=tracing.current_traceparent(),
    )
    session.add(row)
    return row


@dataclass(frozen=True)
class Pending:
    """One event to queue with `add_many`: the event, its record key and CloudEvents subject,
    and the jurisdiction whose inbox it goes to, if it is an inbox event."""

    event: Event
    key: str
    subject: str | None
    event_id: uuid.UUID | None = None
    jurisdiction: str | None = None


@dataclass(frozen=True)
class Prepared:
    """One event already in its JSON form (what `model_dump(mode="json")` of `event_type`
    gives), for a caller that queues dozens of a trivially built event at once and would spend
    more on validating and dumping each than on everything else; it owns the equivalence."""

    event_type: type[Event]
    payload: dict[str, Any]
    key: str
    subject: str | None
    event_id: uuid.UUID | None = None


async def add_many(
    session: AsyncSession, items: Sequence[Pending | Prepared], *, prefix: str
) -> None:
    """Queue many events in one INSERT executed once (a fan-out writes dozens at once)."""
    await bulk.write(session, staged(items, prefix=prefix))


def staged(items: Sequence[Pending | Prepared], *, prefix: str) -> bulk.Rows:
    """`add_many`'s rows, for a caller that writes them with other tables' (`bulk.write`)."""
    return staged_rows(rows(items, prefix=prefix))


def rows(items: Sequence[Pending | Prepared], *, prefix: str) -> list[dict[str, Any]]:
    """The outbox rows of `items`, in order, payloads as JSON-ready dicts: for `staged_rows`,
    or for a server-side function that inserts them itself (case registration)."""
    traceparent = tracing.current_traceparent()
    return [_row(item, prefix, traceparent) for item in items]


def staged_rows(built: Sequence[dict[str, Any]]) -> bulk.Rows:
    """Rows made by `rows`, as `bulk.write` inserts them (payloads as JSON text)."""
    return bulk.Rows(
        _INSERTER, [{**row, "payload": orjson.dumps(row["payload"]).decode()} for row in built]
    )


_INSERTER = bulk.RowInserter(
    OutboxEvent,
    columns={
        "event_id": PG_UUID(as_uuid=True),
        "topic": Text(),
        "key": Text(),
        "event_type": Text(),
        "subject": Text(),
        "payload": Text(),  # JSON text, cast to jsonb by the database
        "traceparent": Text(),
    },
    casts={"payload": JSONB()},
)


def _row(item: Pending | Prepared, prefix: str, traceparent: str | None) -> dict[str, Any]:
    jurisdiction = None
    if isinstance(item, Pending):
        event_type, payload = type(item.event), item.event.model_dump(mode="json")
        jurisdiction = item.jurisdiction
    else:
        event_type, payload = item.event_type, item.payload
    return {
        "event_id": item.event_id or uuid.uuid4(),
        "topic": topic_name(prefix, event_type.TOPIC, jurisdiction),
        "key": item.key,
        "event_type": event_type.TYPE,
        "subject": item.subject,
        "payload": payload,
        "traceparent": traceparent,
    }
