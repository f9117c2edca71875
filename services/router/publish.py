"""Publishing deliveries to their recipients' inboxes, and recording that they were.

Shared by the fan-out (first publication) and the reconciler (re-publication): the inbox record
of a delivery always carries the delivery id as its ce_id, so a recipient sees one delivery
however often it is published.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from sqlalchemy import DateTime, Integer, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from services.registry.audit import service as audit
from services.registry.cases.models import Case
from services.registry.deliveries.models import Delivery
from services.registry.deliveries.rules import DeliveryState
from services.registry.evidence import keys
from services.registry.evidence import service as evidence
from services.registry.evidence.rules import EvidenceKind
from services.registry.responses.models import CooperationResponse
from services.registry.store import bulk, outbox
from shared.events import DeliveryPublished, ResponseDelivered, json_datetime, topic_name
from shared.evidence import Signer
from shared.kafka import TopicProvisioner, encode


@dataclass(frozen=True)
class Policy:
    """Re-publication timing: first wait, exponential growth, cap."""

    ack_timeout: timedelta
    backoff_cap: timedelta

    def next_attempt(self, attempts: int, now: datetime) -> datetime:
        factor = 1 << max(attempts - 1, 0)
        wait = min(self.ack_timeout * factor, self.backoff_cap)
        return now + wait


@dataclass(frozen=True)
class Outgoing:
    delivery_id: uuid.UUID
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


class Sealed(Protocol):
    """What an inbox record needs of a delivery: one loaded back, or one just decided."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def jurisdiction(self) -> str: ...
    @property
    def case_id(self) -> uuid.UUID: ...
    @property
    def rule(self) -> str: ...
    @property
    def recipient_kid(self) -> str | None: ...
    @property
    def sealed_disclosures(self) -> str | None: ...
    @property
    def disclosure_count(self) -> int | None: ...


async def load_outgoing(
    session: AsyncSession,
    *,
    prefix: str,
    delivery_ids: list[uuid.UUID] | None = None,
    pending_of: uuid.UUID | None = None,
) -> list[Outgoing]:
    """The inbox records for these deliveries, or for the pending deliveries of one response
    (disclosures already sealed)."""
    query = (
        select(Delivery, Case.reference, CooperationResponse)
        .join(Case, Case.id == Delivery.case_id)
        .join(CooperationResponse, CooperationResponse.id == Delivery.response_id)
    )
    if delivery_ids is not None:
        # an array, not IN (...): one statement text for any number of ids, where each length
        # of an IN list is a statement of its own that every pooled connection prepares and
        # keeps (the release sweep's bursts grew the router by ~15 MiB that way)
        query = query.where(
            Delivery.id == any_(bindparam("delivery_ids", list(delivery_ids), type_=ARRAY(UUID)))
        )
    if pending_of is not None:
        query = query.where(
            Delivery.response_id == pending_of, Delivery.state == DeliveryState.PENDING
        )
    rows = (await session.execute(query)).all()
    return [outgoing(prefix, d, reference, r) for d, reference, r in rows]


def outgoing(prefix: str, d: Sealed, case_reference: str, r: CooperationResponse) -> Outgoing:
    """One delivery as its recipient's inbox record, under the delivery id as ce_id."""
    event = ResponseDelivered(
        delivery_id=d.id,
        response_id=r.id,
        jurisdiction=d.jurisdiction,
        case_id=d.case_id,
        case_reference=case_reference,
        platform=r.platform,
        handling_code=r.handling_code,
        rule=d.rule,
        emergency=r.emergency,
        issued_at=r.issued_at,
        disclosure_count=(r.disclosure_count if d.disclosure_count is None else d.disclosure_count),
        handling_conditions=r.handling_conditions,
        recipient_kid=d.recipient_kid,
        sealed_disclosures=d.sealed_disclosures,
    )
    value, headers = encode(event, ce_id=d.id, subject=str(d.case_id))
    topic = topic_name(prefix, "inbox", d.jurisdiction)
    return Outgoing(d.id, topic, str(d.case_id).encode(), value, headers)


async def produce(
    producer: AIOKafkaProducer, provisioner: TopicProvisioner, records: list[Outgoing]
) -> None:
    """Send every record and wait for the broker's acknowledgement of each."""
    if not records:
        return
    await provisioner.ensure({r.topic for r in records})
    futures = [await producer.send(r.topic, r.value, key=r.key, headers=r.headers) for r in records]
    for fut in futures:
        await fut


# Built once, inputs bound per call: building a statement costs more than running these.
_LOCK_PUBLISHABLE = (
    select(
        Delivery.id, Delivery.response_id, Delivery.jurisdiction, Delivery.rule, Delivery.attempts
    )
    .where(
        Delivery.id == any_(bindparam("ids", type_=ARRAY(UUID))),
        Delivery.state.in_((DeliveryState.PENDING, DeliveryState.PUBLISHED)),
    )
    .order_by(Delivery.id)
    .with_for_update()
)
# Part of the publication's one statement: each delivery's own attempt and next wait.
_MARK_PUBLISHED = bulk.RowUpdater(
    Delivery,
    key="id",
    columns={
        "id": UUID(as_uuid=True),
        "attempts": Integer(),
        "published_at": DateTime(timezone=True),
        "next_attempt_at": DateTime(timezone=True),
    },
    values=lambda table, given: {
        "attempts": given.attempts,
        "state": DeliveryState.PUBLISHED.value,
        "published_at": func.coalesce(table.c.published_at, given.published_at),
        "next_attempt_at": given.next_attempt_at,
    },
)


async def mark_published(
    session: AsyncSession,
    *,
    records: list[Outgoing],
    policy: Policy,
    prefix: str,
    signer: Signer | None = None,
) -> None:
    """Record the publication, its fan-out log event and audit entry, in one transaction; the
    relay evidence is signed by `signer` when the caller holds the active key already."""
    now = datetime.now(UTC)
    ids = [r.delivery_id for r in records]
    found = (await session.execute(_LOCK_PUBLISHABLE, {"ids": ids})).all() if ids else []
    marked = [
        {
            "id": d.id,
            "attempts": d.attempts + 1,
            "published_at": now,
            "next_attempt_at": policy.next_attempt(d.attempts + 1, now),
        }
        for d in found
    ]
    published_at = json_datetime(now)
    events, entries = [], []
    for d in found:
        attempt, key, subject = d.attempts + 1, str(d.response_id), str(d.id)
        payload = published_payload(
            delivery_id=subject,
            response_id=key,
            jurisdiction=d.jurisdiction,
            rule=d.rule,
            attempt=attempt,
            at=published_at,
        )
        events.append(outbox.Prepared(DeliveryPublished, payload, key, subject))
        entries.append(
            {
                "actor": "router",
                "action": "delivery.published",
                "subject_type": "delivery",
                "subject_id": subject,
                "details": {"jurisdiction": d.jurisdiction, "attempt": attempt},
            }
        )
    queued, digests = audit.staged_many(entries)
    # Relay evidence once per delivery: its first publication, not each re-publication.
    relayed = [
        evidence.Fact(
            EvidenceKind.RELAYED,
            "delivery",
            str(d.id),
            "router",
            response_id=d.response_id,
            delivery_id=d.id,
            details={"jurisdiction": d.jurisdiction, "rule": d.rule},
            audit_digest=digest,
        )
        for d, digest in zip(found, digests, strict=True)
        if d.attempts == 0
    ]
    signed: list[bulk.Rows] = []
    if relayed:
        signer = signer or await keys.active_signer(session)
        signed, _ = evidence.staged_many(relayed, signer=signer)
    await session.flush()  # what the caller changed first, as evidence has always done
    # one statement: the deliveries marked, the events, the audit entries, the evidence
    await bulk.write(
        session,
        bulk.Rows(_MARK_PUBLISHED, marked),
        outbox.staged(events, prefix=prefix),
        queued,
        *signed,
    )
    _synchronize(session, marked)


def _synchronize(session: AsyncSession, marked: list[dict[str, Any]]) -> None:
    """Objects of these deliveries already in the session as the statement left their rows
    (what an ORM update's "fetch" synchronization did): set, or expired where the database
    chose the value."""
    for row in marked:
        obj = session.identity_map.get(identity_key(Delivery, row["id"]))
        if obj is None:
            continue
        set_committed_value(obj, "attempts", row["attempts"])
        set_committed_value(obj, "state", DeliveryState.PUBLISHED)
        set_committed_value(obj, "next_attempt_at", row["next_attempt_at"])
        session.expire(obj, ["published_at"])


def published_payload(
    *, delivery_id: str, response_id: str, jurisdiction: str, rule: str, attempt: int, at: str
) -> dict[str, Any]:
    """`DeliveryPublished(...).model_dump(mode="json")`, without the model (tested equal)."""
    return {
        "delivery_id": delivery_id,
        "response_id": response_id,
        "jurisdiction": jurisdiction,
        "rule": rule,
        "attempt": attempt,
        "published_at": at,
    }
