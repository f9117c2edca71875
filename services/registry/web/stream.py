"""Live fan-out events for the coordinating desk, tailed from the transactional outbox.

Tailing the outbox rather than Kafka shows exactly what the registry committed, needs no
consumer group per viewer, and lets a viewer resume from any outbox id (its SSE id). Outbox
ids come from a sequence: they are handed out in insertion order but become visible in commit
order, so asking only for `id > last` would skip an event whose transaction commits after a
later one. The ids a poll jumps over are kept as gaps and asked for again until they appear or
a grace period passes (a rolled-back transaction leaves a gap for ever). A resumed stream may
therefore repeat an event; its `id` (and `event_id`) lets a viewer drop the duplicate.

Only the fan-out event types are streamed, and each payload is re-validated against its event
contract, whose fields are identifiers, codes, reasons and times, never disclosed data.

A stream is authorised once, when it opens, so it must not outlive the token that opened it:
when the token expires the stream sends `reauthenticate` (whose id is where to resume) and
closes. The number of open streams is capped in all and per caller (client and subject), so
one caller cannot take every slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sse_starlette import EventSourceResponse, ServerSentEvent

from services.registry.settings import RegistrySettings
from services.registry.store.models import OutboxEvent
from shared.auth.principal import Principal
from shared.db import transaction
from shared.errors import TooManyRequests, ValidationFailed
from shared.events import (
    DeliveryAcknowledged,
    DeliveryFailed,
    DeliveryPublished,
    Event,
    JurisdictionExcluded,
    JurisdictionsExcluded,
    ReleaseDecided,
    ResponseRecalled,
    ResponseReceived,
    topic_name,
)

logger = logging.getLogger(__name__)

# SSE event name for each streamed contract; nothing else in the outbox is ever sent.
STREAMED: dict[str, tuple[str, type[Event]]] = {
    ResponseReceived.TYPE: ("response.received", ResponseReceived),
    DeliveryPublished.TYPE: ("delivery.published", DeliveryPublished),
    DeliveryAcknowledged.TYPE: ("delivery.acknowledged", DeliveryAcknowledged),
    JurisdictionExcluded.TYPE: ("delivery.excluded", JurisdictionExcluded),
    # one outbox row for a decision's exclusions, streamed as one `delivery.excluded` each
    JurisdictionsExcluded.TYPE: ("delivery.excluded", JurisdictionsExcluded),
    DeliveryFailed.TYPE: ("delivery.failed", DeliveryFailed),
    ReleaseDecided.TYPE: ("release.decided", ReleaseDecided),
    ResponseRecalled.TYPE: ("response.recalled", ResponseRecalled),
}
REAUTHENTICATE = "reauthenticate"  # the last event of a stream whose token has expired
BATCH = 500
GAP_GRACE_SECONDS = 10.0
MAX_GAPS = 10_000


@dataclass(frozen=True)
class StreamEvent:
    outbox_id: int
    name: str
    data: dict[str, Any]

    def to_sse(self) -> ServerSentEvent:
        return ServerSentEvent(
            data=orjson.dumps(self.data).decode(), event=self.name, id=str(self.outbox_id)
        )


@dataclass
class OutboxTail:
    """One viewer's position in the outbox: the highest id seen and the ids missing below it."""

    prefix: str
    last_id: int
    response_id: uuid.UUID | None = None
    gaps: dict[int, float] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    behind: bool = False  # the last poll hit BATCH: more is already waiting

    async def poll(self, session: AsyncSession) -> list[StreamEvent]:
        """The streamed events that became visible since the previous poll, by outbox id."""
        visible = (
            await session.scalars(
                select(OutboxEvent.id)
                .where(or_(OutboxEvent.id > self.last_id, OutboxEvent.id.in_(list(self.gaps))))
                .order_by(OutboxEvent.id)
                .limit(BATCH)
            )
        ).all()
        self.advance(visible)
        self.behind = len(visible) >= BATCH
        if not visible:
            return []
        query = select(
            OutboxEvent.id, OutboxEvent.event_id, OutboxEvent.event_type, OutboxEvent.payload
        ).where(
            OutboxEvent.id.in_(visible),
            OutboxEvent.topic.in_(
                [topic_name(self.prefix, "responses"), topic_name(self.prefix, "deliveries")]
            ),
            OutboxEvent.event_type.in_(list(STREAMED)),
        )
        if self.response_id is not None:
            query = query.where(OutboxEvent.payload["response_id"].astext == str(self.response_id))
        rows = (await session.execute(query.order_by(OutboxEvent.id))).tuples()
        return [e for row in rows for e in _events(*row)]

    def advance(self, visible: Sequence[int]) -> None:
        """Move past `visible`, remembering skipped ids as gaps until their grace runs out."""
        now, seen = self.clock(), set(visible)
        self.gaps = {i: until for i, until in self.gaps.items() if i not in seen and until > now}
        top = max(seen, default=self.last_id)
        if top > self.last_id:
            for missing in range(max(self.last_id + 1, top - MAX_GAPS), top):
                if missing not in seen:
                    self.gaps[missing] = now + GAP_GRACE_SECONDS
            self.last_id = top
        if len(self.gaps) > MAX_GAPS:
            self.gaps = dict(sorted(self.gaps.items())[-MAX_GAPS:])


def _events(
    outbox_id: int, event_id: uuid.UUID, event_type: str, payload: dict[str, Any]
) -> list[StreamEvent]:
    """What viewers see of one outbox row: its event, or for a summary of exclusions one
    `delivery.excluded` per jurisdiction, exactly as when each had an outbox row of its own."""
    if event_type == JurisdictionsExcluded.TYPE:
        return _exclusions(outbox_id, payload)
    name, model = STREAMED[event_type]
    try:
        event = model.model_validate(payload)
    except ValidationError:
        logger.warning("outbox payload off contract; not streamed", extra={"outbox_id": outbox_id})
        return []
    body = {"event_id": str(event_id), "type": event_type, "data": event.model_dump(mode="json")}
    return [StreamEvent(outbox_id=outbox_id, name=name, data=body)]


def _exclusions(outbox_id: int, payload: dict[str, Any]) -> list[StreamEvent]:
    """A summary row as the `delivery.excluded` events it stands for, each under its exclusion
    id. All but the last carry the id before the row's: a viewer that reconnects in the middle
    resumes before the row and gets all of it again (the repeats carry the same event ids)."""
    try:
        summary = JurisdictionsExcluded.model_validate(payload)
    except ValidationError:
        logger.warning("outbox payload off contract; not streamed", extra={"outbox_id": outbox_id})
        return []
    name, _ = STREAMED[JurisdictionExcluded.TYPE]
    last = len(summary.exclusions) - 1
    return [
        StreamEvent(
            outbox_id=outbox_id if i == last else outbox_id - 1,
            name=name,
            data={
                "event_id": str(item.exclusion_id),
                "type": JurisdictionExcluded.TYPE,
                "data": JurisdictionExcluded(
                    response_id=summary.response_id, decided_at=summary.decided_at, **dict(item)
                ).model_dump(mode="json"),
            },
        )
        for i, item in enumerate(summary.exclusions)
    ]


async def head(session: AsyncSession) -> int:
    """The outbox id a new viewer starts after: it sees only what is committed from now on."""
    return int(await session.scalar(select(func.coalesce(func.max(OutboxEvent.id), 0))) or 0)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def viewer_of(principal: Principal) -> str:
    """Whose streams count together: a client, and for a signed-in person that person."""
    return f"{principal.client_id}/{principal.subject}"


@dataclass
class Viewers:
    """Counts open streams, in all and per viewer, so the poll load on the database stays
    bounded and one viewer cannot take every slot. `clock` is when tokens are judged expired."""

    limit: int
    per_viewer: int
    open: int = 0
    by_viewer: dict[str, int] = field(default_factory=dict)
    clock: Callable[[], datetime] = _utcnow

    def full(self, viewer: str) -> bool:
        return self.open >= self.limit or self.by_viewer.get(viewer, 0) >= self.per_viewer

    def enter(self, viewer: str) -> None:
        self.open += 1
        self.by_viewer[viewer] = self.by_viewer.get(viewer, 0) + 1

    def leave(self, viewer: str) -> None:
        self.open -= 1
        left = self.by_viewer.pop(viewer, 1) - 1
        if left:
            self.by_viewer[viewer] = left


def _reauthenticate(tail: OutboxTail) -> ServerSentEvent:
    data = orjson.dumps({"type": REAUTHENTICATE, "reason": "the access token has expired"})
    return ServerSentEvent(data=data.decode(), event=REAUTHENTICATE, id=str(tail.last_id))


async def follow(
    sm: async_sessionmaker[AsyncSession],
    tail: OutboxTail,
    *,
    viewers: Viewers,
    principal: Principal,
    poll_seconds: float,
    max_seconds: float,
) -> AsyncIterator[ServerSentEvent]:
    """Poll the outbox until the time budget is spent or the token expires (then say so);
    a disconnect cancels it from outside."""
    viewer = viewer_of(principal)
    viewers.enter(viewer)
    deadline = asyncio.get_running_loop().time() + max_seconds
    try:
        while asyncio.get_running_loop().time() < deadline:
            if viewers.clock() >= principal.expires_at:
                yield _reauthenticate(tail)
                return
            async with transaction(sm) as session:
                batch = await tail.poll(session)
            for event in batch:
                yield event.to_sse()
            if not tail.behind:
                await asyncio.sleep(poll_seconds)
    finally:
        viewers.leave(viewer)


SEND_TIMEOUT_SECONDS = 10  # a viewer that stops reading is dropped, never buffered for


def resume_point(last_event_id: str | None) -> int | None:
    """Where a reconnecting viewer resumes: an event id this stream sent, or None for now."""
    if last_event_id is None:
        return None
    if not last_event_id.isdigit() or len(last_event_id) > 18:
        raise ValidationFailed("Last-Event-ID must be an event id this stream sent")
    return int(last_event_id)


async def serve(
    viewers: Viewers,
    sm: async_sessionmaker[AsyncSession],
    settings: RegistrySettings,
    *,
    principal: Principal,
    response_id: uuid.UUID | None,
    resume_from: int | None,
) -> EventSourceResponse:
    """The one live stream, for the API and the dashboard alike: admitted under the viewer
    caps, started at `resume_from` or at the head fixed before the headers go out (so nothing
    committed after is missed), and ended with `reauthenticate` when the token expires."""
    if viewers.full(viewer_of(principal)):
        raise TooManyRequests("too many open streams; retry shortly", retry_after=5)
    start = resume_from
    if start is None:
        async with transaction(sm) as session:
            start = await head(session)
    tail = OutboxTail(prefix=settings.topic_prefix, last_id=start, response_id=response_id)
    events = follow(
        sm,
        tail,
        viewers=viewers,
        principal=principal,
        poll_seconds=settings.stream_poll_seconds,
        max_seconds=settings.stream_max_seconds,
    )
    return EventSourceResponse(
        events, ping=settings.stream_ping_seconds, send_timeout=SEND_TIMEOUT_SECONDS
    )
