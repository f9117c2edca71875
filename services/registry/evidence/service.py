"""Use cases of evidence: record signed facts, hand out bundles, recall, confirm deletion, and
forget payloads at the end of their retention.

`record` is the one function every domain calls, inside the transaction of the change it
proves: the signed record, its audit entry and the change commit or roll back together. The
record signs the content digest of that audit entry (`audit_chain.content_digest`): the digest
of the entry the caller queued for the change (passed as `Fact.audit_digest`), or of an
`evidence.<kind>` entry `record` queues itself. Entries are chained later by the sequencer;
whoever holds the record can find the chained entry whose content (seq and predecessor left
out) hashes to the digest, and check the chain from there. The content digest cannot change
when the entry is chained, which a hash over seq and prev_hash would.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import DateTime, Text, select
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.audit import service as audit
from services.registry.context import Actor, Context
from services.registry.deliveries.models import Delivery
from services.registry.deliveries.rules import DeliveryState, FanoutState
from services.registry.evidence import keys
from services.registry.evidence import repository as repo
from services.registry.evidence.models import DeletionRequest, EvidenceRecord, Recall
from services.registry.evidence.rules import (
    DeletionState,
    EvidenceKind,
    build_claims,
    digest,
    nameable_jurisdictions,
    subject_tag,
)
from services.registry.evidence.schemas import (
    DeletionConfirmation,
    EvidenceBundle,
    EvidenceRecordOut,
    RecallOut,
    RecipientProgress,
    ResponseStatus,
)
from services.registry.responses.models import CooperationResponse
from services.registry.responses.rules import HandlingCode
from services.registry.store import bulk, outbox
from shared import evidence as signing
from shared.db import transaction
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.events import (
    DeletionConfirmed,
    DeletionReminded,
    DeliveryRecalled,
    PayloadDeleted,
    ResponseRecalled,
)

# Deliveries their recipient never received and must not see: held for, or withheld by, the
# originator of the request (a lapse ends withheld too).
UNDISCLOSED_STATES = frozenset({DeliveryState.HELD, DeliveryState.WITHHELD})
RETENTION_BATCH = 200  # deliveries per retention transaction: bounded locks, bounded signing
REMINDER_BATCH = 200


@dataclass(frozen=True)
class Fact:
    """Something to prove: what happened, to what, by whom, with metadata (no personal data)."""

    kind: EvidenceKind
    subject_type: str
    subject_id: str
    actor: str
    response_id: uuid.UUID | None = None
    delivery_id: uuid.UUID | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    # The content digest of the audit entry the caller queued for this same change (what
    # `audit.append` returns); without one, `record` queues an `evidence.<kind>` entry itself.
    audit_digest: str | None = None


# One statement for any number of records: the router signs one per delivery it publishes.
_RECORDS = bulk.RowInserter(
    EvidenceRecord,
    columns={
        "id": PG_UUID(as_uuid=True),
        "kind": Text(),
        "subject_type": Text(),
        "subject_id": Text(),
        "response_id": PG_UUID(as_uuid=True),
        "delivery_id": PG_UUID(as_uuid=True),
        "at": DateTime(timezone=True),
        "audit_digest": Text(),
        "kid": Text(),
        "jws": Text(),
    },
)


async def record(session: AsyncSession, fact: Fact) -> uuid.UUID:
    """Sign one fact in the caller's transaction; returns the record's id."""
    (ident,) = await record_many(session, [fact])
    return ident


async def record_many(
    session: AsyncSession, facts: Sequence[Fact], *, signer: signing.Signer | None = None
) -> list[uuid.UUID]:
    """Sign several facts at once (one key look-up, at most one audit INSERT); no look-up with
    a `signer` the caller found active a moment ago (the router's fan-out, once a batch)."""
    if not facts:
        return []
    signer = signer or await keys.active_signer(session)
    parts, ids = staged_many(facts, signer=signer)
    await session.flush()  # what the caller changed first, as when these were ORM objects
    await bulk.write(session, *parts)
    return ids


def staged_many(
    facts: Sequence[Fact], *, signer: signing.Signer
) -> tuple[list[bulk.Rows], list[uuid.UUID]]:
    """`record_many`'s rows (the evidence records, and the audit entries of the facts that
    name none) and the records' ids, for a caller that writes them with other tables'
    (`bulk.write`)."""
    ids = [uuid.uuid4() for _ in facts]
    unlinked = [(ident, f) for ident, f in zip(ids, facts, strict=True) if f.audit_digest is None]
    queued, own_digests = audit.staged_many(
        [
            {
                "actor": f.actor,
                "action": f"evidence.{f.kind.value}",
                "subject_type": f.subject_type,
                "subject_id": f.subject_id,
                "details": {"evidence_id": str(ident), **f.details},
            }
            for ident, f in unlinked
        ],
    )
    own = iter(own_digests)
    digests = [f.audit_digest if f.audit_digest is not None else next(own) for f in facts]
    now = datetime.now(UTC)
    rows = []
    for ident, f, audit_digest in zip(ids, facts, digests, strict=True):
        subjects = [subject_tag(f.subject_type, f.subject_id)]
        if f.response_id is not None:
            subjects.append(subject_tag("response", f.response_id))
        if f.delivery_id is not None:
            subjects.append(subject_tag("delivery", f.delivery_id))
        claims = build_claims(
            record_id=ident,
            kind=f.kind,
            subject_type=f.subject_type,
            subject_id=f.subject_id,
            subjects=subjects,
            at=now,
            audit_digest=audit_digest,
            details=f.details,
        )
        rows.append(
            {
                "id": ident,
                "kind": f.kind.value,
                "subject_type": f.subject_type,
                "subject_id": f.subject_id,
                "response_id": f.response_id,
                "delivery_id": f.delivery_id,
                "at": now,
                "audit_digest": audit_digest,
                "kid": signer.kid,
                "jws": signing.sign(claims, signer, typ=signing.EVIDENCE_TYP),
            }
        )
    return [queued, bulk.Rows(_RECORDS, rows)], ids


def _out(row: EvidenceRecord) -> EvidenceRecordOut:
    claims = signing.unverified_claims(row.jws)
    return EvidenceRecordOut(
        id=str(row.id),
        kind=row.kind,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        at=str(claims["at"]),
        audit_digest=row.audit_digest,
        jws=row.jws,
    )


async def _platforms_response(
    session: AsyncSession, response_id: uuid.UUID, platform: str
) -> CooperationResponse:
    resp = await session.get(CooperationResponse, response_id)
    if resp is None or resp.platform != platform:
        raise NotFound("no such response")
    return resp


async def _nameable(
    session: AsyncSession, resp: CooperationResponse, recipients: set[str]
) -> frozenset[str]:
    named = {*resp.scope_case_ids, resp.scope_lead_case_id, resp.requesting_case_id}
    opened = await repo.openers(session, {c for c in named if c is not None})
    return nameable_jurisdictions(named_case_openers=opened, recipients=recipients)


async def response_status(
    session: AsyncSession, *, response_id: uuid.UUID, platform: str
) -> ResponseStatus:
    """The submitting platform's view; another platform's response is a 404."""
    resp = await _platforms_response(session, response_id, platform)
    deliveries = await repo.deliveries_of(session, resp.id)
    nameable = await _nameable(session, resp, {d.jurisdiction for d in deliveries})
    deletions = await repo.deletions_of(session, [d.id for d in deliveries])
    recipients = [
        RecipientProgress(
            delivery_id=d.id,
            jurisdiction=d.jurisdiction,
            state=DeliveryState(d.state),
            published_at=d.published_at,
            acknowledged_at=d.acknowledged_at,
            failed_at=d.failed_at,
            deletion=DeletionState(deletions[d.id].state) if d.id in deletions else None,
        )
        for d in deliveries
        if d.jurisdiction in nameable
    ]
    others = Counter(d.state for d in deliveries if d.jurisdiction not in nameable)
    recall = await session.get(Recall, resp.id)
    return ResponseStatus(
        id=resp.id,
        platform=resp.platform,
        handling_code=HandlingCode(resp.handling_code),
        fanout_state=resp.fanout_state,
        received_at=resp.received_at,
        routed_at=resp.routed_at,
        recipients=recipients,
        other_recipients=dict(sorted(others.items())),
        recall=_recall_out(recall, deliveries, deletions) if recall else None,
    )


def _recall_out(
    recall: Recall, deliveries: Sequence[Delivery], deletions: Mapping[uuid.UUID, DeletionRequest]
) -> RecallOut:
    return RecallOut(
        response_id=recall.response_id,
        recalled_at=recall.recalled_at,
        withdrawn=sum(d.state == DeliveryState.RECALLED for d in deliveries),
        deletion_requested=len(deletions),
    )


async def response_bundle(
    session: AsyncSession, *, response_id: uuid.UUID, platform: str
) -> EvidenceBundle:
    """The platform's evidence: the response's records and those of nameable recipients."""
    resp = await _platforms_response(session, response_id, platform)
    deliveries = await repo.deliveries_of(session, resp.id)
    nameable = await _nameable(session, resp, {d.jurisdiction for d in deliveries})
    rows = await repo.records_of_response(session, resp.id, jurisdictions=nameable)
    return EvidenceBundle(subject=subject_tag("response", resp.id), records=[_out(r) for r in rows])


async def delivery_bundle(
    session: AsyncSession, *, delivery_id: uuid.UUID, jurisdiction: str
) -> EvidenceBundle:
    """The recipient's evidence of one delivery; another jurisdiction's is a 404, and so is
    one the originator holds or withheld: its recipient must not learn that it exists."""
    delivery = await session.get(Delivery, delivery_id)
    if (
        delivery is None
        or delivery.jurisdiction != jurisdiction
        or delivery.state in UNDISCLOSED_STATES
    ):
        raise NotFound("no such delivery")
    rows = await repo.records_of_delivery(session, delivery.id)
    return EvidenceBundle(
        subject=subject_tag("delivery", delivery.id), records=[_out(r) for r in rows]
    )


async def subject_bundle(
    session: AsyncSession, *, subject_type: str, subject_id: str
) -> EvidenceBundle:
    """Every record about one object of another domain (a release, a request). The calling
    domain decides who may see it (its own 404 for everyone else) before asking."""
    rows = await repo.records_of_subject(session, subject_type, subject_id)
    return EvidenceBundle(
        subject=subject_tag(subject_type, subject_id), records=[_out(r) for r in rows]
    )


def rejection_evidence_path(submission_id: uuid.UUID) -> str:
    return f"/v1/responses/rejections/{submission_id}/evidence"


async def record_rejection(
    sm: async_sessionmaker[AsyncSession], *, platform: str, client_id: str, error: ValidationFailed
) -> ValidationFailed:
    """Sign the refusal of a submission (its own transaction: the submission's rolled back) and
    return the error to answer with, pointing at the evidence. The reason is signed as a digest:
    it may quote what was submitted."""
    ident = uuid.uuid4()
    async with transaction(sm) as session:
        await record(
            session,
            Fact(
                EvidenceKind.SUBMISSION_REJECTED,
                "submission",
                str(ident),
                client_id,
                details={"platform": platform, "reason_sha256": digest(error.detail.encode())},
            ),
        )
    extra = {**error.extra, "evidence": rejection_evidence_path(ident)}
    return ValidationFailed(error.detail, extra=extra)


def _platform_of(row: EvidenceRecord) -> object:
    return signing.unverified_claims(row.jws)["details"].get("platform")


async def rejection_bundle(
    session: AsyncSession, *, submission_id: uuid.UUID, platform: str
) -> EvidenceBundle:
    """The evidence that a platform's submission was refused; another platform's is a 404."""
    rows = (
        await session.scalars(
            select(EvidenceRecord).where(
                EvidenceRecord.subject_type == "submission",
                EvidenceRecord.subject_id == str(submission_id),
            )
        )
    ).all()
    mine = [
        r for r in rows if signing.unverified_claims(r.jws)["details"].get("platform") == platform
    ]
    if not mine:
        raise NotFound("no such submission")
    return EvidenceBundle(
        subject=subject_tag("submission", submission_id), records=[_out(r) for r in mine]
    )


@dataclass(frozen=True)
class Recaller:
    """Who asks for a recall: a platform (by slug) or an authority (by jurisdiction)."""

    client_id: str
    platform: str | None = None
    jurisdiction: str | None = None


async def _may_recall(
    session: AsyncSession, resp: CooperationResponse, who: Recaller
) -> Literal["platform", "originator"] | None:
    if who.platform is not None and who.platform == resp.platform:
        return "platform"
    if (
        who.jurisdiction is not None
        and resp.requesting_case_id is not None
        and who.jurisdiction in await repo.openers(session, {resp.requesting_case_id})
    ):
        return "originator"
    return None


async def recall(
    session: AsyncSession, *, response_id: uuid.UUID, who: Recaller, reason: str, ctx: Context
) -> RecallOut:
    """Recall a response: unacknowledged deliveries are withdrawn, acknowledged ones get a
    deletion request. Only the submitting platform or the originator (the opener of the
    requesting case) may; to anyone else the response does not exist (404). Idempotent."""
    resp = await session.get(CooperationResponse, response_id, with_for_update=True)
    role = await _may_recall(session, resp, who) if resp is not None else None
    if resp is None or role is None:
        raise NotFound("no such response")
    existing = await session.get(Recall, resp.id)
    deliveries = await repo.deliveries_of(session, resp.id, lock=True)
    if existing is not None:
        return _recall_out(
            existing, deliveries, await repo.deletions_of(session, [d.id for d in deliveries])
        )
    if resp.fanout_state == FanoutState.RECEIVED:
        raise Conflict("the response is still being routed; recall it again in a moment")
    now = datetime.now(UTC)
    session.add(
        Recall(response_id=resp.id, recalled_by=who.client_id, reason=reason, recalled_at=now)
    )
    facts = [
        Fact(
            EvidenceKind.RESPONSE_RECALLED,
            "response",
            str(resp.id),
            who.client_id,
            response_id=resp.id,
            details={"by": role, "reason_sha256": digest(reason.encode())},
        )
    ]
    withdrawn = requested = 0
    for d in deliveries:
        if d.state == DeliveryState.RECALLED:
            continue
        acked = d.state == DeliveryState.ACKNOWLEDGED
        d.sealed_disclosures, d.next_attempt_at = None, None
        if acked:
            requested += 1
            session.add(
                DeletionRequest(
                    delivery_id=d.id,
                    response_id=resp.id,
                    jurisdiction=d.jurisdiction,
                    state=DeletionState.REQUESTED.value,
                    requested_at=now,
                )
            )
        else:
            withdrawn += 1
            d.state = DeliveryState.RECALLED.value
        kind = EvidenceKind.DELETION_REQUESTED if acked else EvidenceKind.DELIVERY_WITHDRAWN
        facts.append(
            Fact(
                kind,
                "delivery",
                str(d.id),
                who.client_id,
                response_id=resp.id,
                delivery_id=d.id,
                details={"jurisdiction": d.jurisdiction},
            )
        )
        notice = DeliveryRecalled(
            delivery_id=d.id,
            response_id=resp.id,
            jurisdiction=d.jurisdiction,
            case_id=d.case_id,
            deletion_required=acked,
            recalled_at=now,
        )
        outbox.add(
            session,
            notice,
            key=str(d.case_id),
            subject=str(d.id),
            prefix=ctx.topic_prefix,
            jurisdiction=d.jurisdiction,
        )
    event = ResponseRecalled(
        response_id=resp.id,
        recalled_by=role,
        withdrawn=withdrawn,
        deletion_requested=requested,
        recalled_at=now,
    )
    outbox.add(session, event, key=str(resp.id), subject=str(resp.id), prefix=ctx.topic_prefix)
    await record_many(session, facts)
    return RecallOut(
        response_id=resp.id, recalled_at=now, withdrawn=withdrawn, deletion_requested=requested
    )


async def confirm_deletion(
    session: AsyncSession, *, actor: Actor, delivery_id: uuid.UUID, ctx: Context
) -> DeletionConfirmation:
    """The recipient confirms it deleted a recalled delivery; recorded with evidence.

    Another jurisdiction's delivery is a 404; a delivery with no deletion request is a 409.
    Confirming twice answers with the first confirmation."""
    delivery = await session.get(Delivery, delivery_id)
    if delivery is None or delivery.jurisdiction != actor.jurisdiction:
        raise NotFound("no such delivery")
    request = await session.get(DeletionRequest, delivery_id, with_for_update=True)
    if request is None:
        raise Conflict("this delivery was not recalled; there is nothing to confirm")
    if request.confirmed_at is None:
        now = datetime.now(UTC)
        request.state, request.confirmed_at = DeletionState.CONFIRMED.value, now
        request.confirmed_by_client = actor.client_id
        event = DeletionConfirmed(
            delivery_id=delivery.id,
            response_id=delivery.response_id,
            jurisdiction=delivery.jurisdiction,
            confirmed_at=now,
        )
        outbox.add(
            session,
            event,
            key=str(delivery.response_id),
            subject=str(delivery.id),
            prefix=ctx.topic_prefix,
        )
        await record(
            session,
            Fact(
                EvidenceKind.DELETION_CONFIRMED,
                "delivery",
                str(delivery.id),
                actor.client_id,
                response_id=delivery.response_id,
                delivery_id=delivery.id,
                details={"jurisdiction": delivery.jurisdiction},
            ),
        )
    assert request.confirmed_at is not None
    return DeletionConfirmation(
        delivery_id=delivery.id, state="confirmed", confirmed_at=request.confirmed_at
    )


async def remind(
    session: AsyncSession,
    *,
    now: datetime,
    every: timedelta,
    prefix: str,
    batch: int = REMINDER_BATCH,
) -> int:
    """Remind recipients of deletions unconfirmed for `every`; returns how many were reminded."""
    due = await repo.due_reminders(session, before=now - every, limit=batch)
    for request, case_id in due:
        request.reminded_at, request.reminders = now, request.reminders + 1
        event = DeletionReminded(
            delivery_id=request.delivery_id,
            response_id=request.response_id,
            jurisdiction=request.jurisdiction,
            case_id=case_id,
            requested_at=request.requested_at,
            reminder=request.reminders,
            reminded_at=now,
        )
        outbox.add(
            session,
            event,
            key=str(case_id),
            subject=str(request.delivery_id),
            prefix=prefix,
            jurisdiction=request.jurisdiction,
        )
    if due:
        await audit.append_many(
            session,
            [
                {
                    "actor": "router",
                    "action": "delivery.deletion-reminded",
                    "subject_type": "delivery",
                    "subject_id": str(request.delivery_id),
                    "details": {
                        "jurisdiction": request.jurisdiction,
                        "reminder": request.reminders,
                    },
                }
                for request, _ in due
            ],
        )
    return len(due)


async def expire_payloads(
    session: AsyncSession, *, before: datetime, prefix: str, batch: int = RETENTION_BATCH
) -> int:
    """Delete the ciphertexts of up to `batch` deliveries acknowledged before `before`, each
    with a deletion evidence record and event; metadata and audit entries stay. Call again
    while the count equals `batch`."""
    expired = await repo.expired_payloads(session, before=before, limit=batch)
    if not expired:
        return 0
    now = datetime.now(UTC)
    for d in expired:
        d.sealed_disclosures = None
    payloads = [
        {
            "delivery_id": str(d.id),
            "response_id": str(d.response_id),
            "jurisdiction": d.jurisdiction,
            "deleted_at": now.isoformat().replace("+00:00", "Z"),
        }
        for d in expired
    ]
    await outbox.add_many(
        session,
        [outbox.Prepared(PayloadDeleted, p, p["response_id"], p["delivery_id"]) for p in payloads],
        prefix=prefix,
    )
    await record_many(
        session,
        [
            Fact(
                EvidenceKind.PAYLOAD_DELETED,
                "delivery",
                str(d.id),
                "retention",
                response_id=d.response_id,
                delivery_id=d.id,
                details={"jurisdiction": d.jurisdiction},
            )
            for d in expired
        ],
    )
    return len(expired)
