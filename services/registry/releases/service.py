"""Release use cases: record each delivery's release at fan-out, let the originator decide the
held ones, and lapse (with a reminder first) the ones nobody decides on.

The router records (`record`) and sweeps (`lapse_due`, `remind_due`); intake serves the
originator (`list_pending`, `decide`). A released delivery becomes `pending`; the router's
reconciler publishes it on its next pass (`repository.released_unpublished`), through the same
publication path as every other delivery, so it keeps its delivery id as ce_id.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Text
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.audit import service as audit
from services.registry.cases.rules import CoordinationState, ReleasePolicy
from services.registry.context import Actor, Context, encode_cursor, keyset_page
from services.registry.deliveries.models import Delivery, Exclusion
from services.registry.deliveries.rules import DeliveryState
from services.registry.evidence import service as evidence
from services.registry.evidence.rules import EvidenceKind
from services.registry.evidence.schemas import EvidenceBundle
from services.registry.evidence.service import Fact
from services.registry.releases import repository
from services.registry.releases.models import Release
from services.registry.releases.rules import (
    Planned,
    ReleaseBasis,
    ReleaseDecision,
    ReleaseState,
    Requester,
    decide_release,
    withheld_detail,
)
from services.registry.releases.schemas import ReleaseOut
from services.registry.responses.models import CooperationResponse
from services.registry.responses.rules import HandlingCode
from services.registry.standing.rules import Reason
from services.registry.store import bulk, outbox
from shared.errors import NotFound
from shared.events import (
    ExcludedJurisdiction,
    JurisdictionsExcluded,
    ReleaseDecided,
    ReleaseRequested,
)

RELEASE_SUBJECT = "release"
RELEASE_NAMESPACE = uuid.UUID("3b0f6f5e-9d0a-4f7c-8a51-6c2d7e9b4a10")


def release_id(delivery_id: uuid.UUID) -> uuid.UUID:
    """Derived from the delivery, so a replayed fan-out names the same release."""
    return uuid.uuid5(RELEASE_NAMESPACE, f"release:{delivery_id}")


async def requester(session: AsyncSession, case_id: uuid.UUID | None) -> Requester | None:
    """The requesting case as the release rules need it; None for a voluntary disclosure."""
    if case_id is None:
        return None
    case = await repository.requesting_case(session, case_id)
    if case is None:
        return None
    accepted = case.coordination_state == CoordinationState.ACCEPTED
    return Requester(
        case_id=case.id,
        originator=case.opened_by,
        coordinator=case.coordinating_jurisdiction if accepted else None,
        policy=ReleasePolicy(case.release_policy),
    )


_RELEASES = bulk.RowInserter(
    Release,
    columns={
        "id": PG_UUID(as_uuid=True),
        "delivery_id": PG_UUID(as_uuid=True),
        "response_id": PG_UUID(as_uuid=True),
        "jurisdiction": Text(),
        "requesting_case_id": PG_UUID(as_uuid=True),
        "originator": Text(),
        "state": Text(),
        "basis": Text(),
        "lapses_at": DateTime(timezone=True),
        "created_at": DateTime(timezone=True),
    },
)


@dataclass(frozen=True)
class Recorded:
    """One response's release plan as a fan-out decided it, to be written by `record_many`."""

    planned: Sequence[Planned]
    response: CooperationResponse
    delivery_ids: dict[str, uuid.UUID]
    originator: str | None
    now: datetime


async def record(
    session: AsyncSession,
    *,
    planned: Sequence[Planned],
    response: CooperationResponse,
    delivery_ids: dict[str, uuid.UUID],
    originator: str | None,
    now: datetime,
    lapse_after: timedelta,
    prefix: str,
) -> None:
    """One release row per delivery (the recorded decision, voluntary disclosures included),
    and for each held one a `ReleaseRequested` on the originator's inbox."""
    plan = Recorded(planned, response, delivery_ids, originator, now)
    await record_many(session, [plan], lapse_after=lapse_after, prefix=prefix)


async def record_many(
    session: AsyncSession, plans: Sequence[Recorded], *, lapse_after: timedelta, prefix: str
) -> None:
    """`record` for the responses of a fan-out batch: their rows in one INSERT, their release
    requests in another (one statement text for any number of them)."""
    await bulk.write(session, *staged_many(plans, lapse_after=lapse_after, prefix=prefix))


def staged_many(
    plans: Sequence[Recorded], *, lapse_after: timedelta, prefix: str
) -> list[bulk.Rows]:
    """`record_many`'s rows (release rows, and the outbox events of the held ones), for a
    caller that writes them with other tables' (`bulk.write`)."""
    rows: list[dict[str, Any]] = []
    held: list[tuple[dict[str, Any], Recorded]] = []
    for plan in plans:
        for p in plan.planned:
            if p.state is None or p.basis is None:
                continue
            row = _row(plan, p.decision.jurisdiction, p.state, p.basis, lapse_after)
            rows.append(row)
            if p.state is ReleaseState.HELD:
                held.append((row, plan))
    requested = [_requested(row, plan.response, reminder=False, at=plan.now) for row, plan in held]
    return [bulk.Rows(_RELEASES, rows), outbox.staged(requested, prefix=prefix)]


def _row(
    plan: Recorded,
    jurisdiction: str,
    state: ReleaseState,
    basis: ReleaseBasis,
    lapse_after: timedelta,
) -> dict[str, Any]:
    delivery_id = plan.delivery_ids[jurisdiction]
    return {
        "id": release_id(delivery_id),
        "delivery_id": delivery_id,
        "response_id": plan.response.id,
        "jurisdiction": jurisdiction,
        "requesting_case_id": plan.response.requesting_case_id,
        "originator": plan.originator,
        "state": state.value,
        "basis": basis.value,
        "lapses_at": plan.now + lapse_after if state is ReleaseState.HELD else None,
        "created_at": plan.now,
    }


def _request(
    session: AsyncSession,
    row: dict[str, Any],
    response: CooperationResponse,
    *,
    reminder: bool,
    at: datetime,
    prefix: str,
) -> None:
    pending = _requested(row, response, reminder=reminder, at=at)
    outbox.add(
        session,
        pending.event,
        key=pending.key,
        subject=pending.subject,
        prefix=prefix,
        jurisdiction=pending.jurisdiction,
    )


def _requested(
    row: dict[str, Any], response: CooperationResponse, *, reminder: bool, at: datetime
) -> outbox.Pending:
    """The `ReleaseRequested` of a held release row, for its originator's inbox."""
    assert row["originator"] is not None
    assert row["requesting_case_id"] is not None
    event = ReleaseRequested(
        release_id=row["id"],
        response_id=response.id,
        requesting_case_id=row["requesting_case_id"],
        jurisdiction=row["originator"],
        recipient=row["jurisdiction"],
        handling_code=response.handling_code,
        lapses_at=row["lapses_at"],
        reminder=reminder,
        requested_at=at,
    )
    return outbox.Pending(
        event, key=str(response.id), subject=str(row["id"]), jurisdiction=row["originator"]
    )


def _out(r: Release, d: Delivery, resp: CooperationResponse) -> ReleaseOut:
    return ReleaseOut(
        id=r.id,
        response_id=r.response_id,
        delivery_id=r.delivery_id,
        jurisdiction=r.jurisdiction,
        requesting_case_id=r.requesting_case_id,
        handling_code=HandlingCode(resp.handling_code),
        handling_conditions=resp.handling_conditions,
        disclosure_count=d.disclosure_count,
        state=ReleaseState(r.state),
        basis=ReleaseBasis(r.basis),
        reason=r.reason,
        lapses_at=r.lapses_at,
        decided_at=r.decided_at,
        created_at=r.created_at,
    )


async def list_for(
    session: AsyncSession,
    *,
    originator: str,
    limit: int,
    cursor: str | None = None,
    state: ReleaseState | None = ReleaseState.HELD,
) -> tuple[list[ReleaseOut], str | None]:
    """The originator's releases (by default the ones waiting for it), oldest first."""
    query = repository.with_delivery().where(Release.originator == originator)
    if state is not None:
        query = query.where(Release.state == state.value)
    query = keyset_page(
        query, Release.created_at, Release.id, cursor=cursor, limit=limit, newest_first=False
    )
    rows = (await session.execute(query)).all()
    page = rows[:limit]
    last = page[-1][0] if page else None
    nxt = encode_cursor(last.created_at, last.id) if last and len(rows) > limit else None
    return [_out(*row) for row in page], nxt


async def read(session: AsyncSession, *, release_id: uuid.UUID, originator: str) -> ReleaseOut:
    row = (
        await session.execute(repository.with_delivery().where(Release.id == release_id))
    ).first()
    if row is None or row[0].originator != originator:
        raise NotFound("no such release")
    return _out(*row)


async def decide(
    session: AsyncSession,
    *,
    actor: Actor,
    release_id: uuid.UUID,
    decision: ReleaseDecision,
    reason: str | None,
    ctx: Context,
) -> ReleaseOut:
    """The originator releases or withholds one held delivery; anyone else gets NotFound."""
    row = (
        await session.execute(
            repository.with_delivery()
            .where(Release.id == release_id)
            .with_for_update(of=(Release, Delivery))
        )
    ).first()
    if row is None or row[0].originator != actor.jurisdiction:
        raise NotFound("no such release")
    release, delivery, resp = row
    state, basis = decide_release(ReleaseState(release.state), decision)
    now = datetime.now(UTC)
    await _settle(session, release, delivery, state, basis, now, prefix=ctx.topic_prefix)
    release.reason, release.decided_by_client = reason, actor.client_id
    if state is ReleaseState.WITHHELD:
        _exclude(session, delivery, Reason.WITHHELD_BY_ORIGINATOR, reason, now, ctx.topic_prefix)
    entry = await audit.append(
        session,
        actor=actor.client_id,
        action=f"release.{state.value}",
        subject_type="delivery",
        subject_id=str(delivery.id),
        details={"jurisdiction": delivery.jurisdiction, "release_id": str(release.id)},
    )
    await _prove(session, release, delivery, actor=actor.client_id, audit_digest=entry)
    await session.flush()
    return _out(release, delivery, resp)


async def _settle(
    session: AsyncSession,
    release: Release,
    delivery: Delivery,
    state: ReleaseState,
    basis: ReleaseBasis,
    now: datetime,
    *,
    prefix: str,
) -> None:
    release.state, release.basis, release.decided_at = state.value, basis.value, now
    released = state is ReleaseState.RELEASED
    delivery.state = DeliveryState.PENDING if released else DeliveryState.WITHHELD
    assert release.originator is not None
    event = ReleaseDecided(
        release_id=release.id,
        delivery_id=delivery.id,
        response_id=delivery.response_id,
        originator=release.originator,
        jurisdiction=delivery.jurisdiction,
        state=state.value,
        basis=basis.value,
        decided_at=now,
    )
    outbox.add(
        session, event, key=str(delivery.response_id), subject=str(release.id), prefix=prefix
    )


async def _prove(
    session: AsyncSession,
    release: Release,
    delivery: Delivery,
    *,
    actor: str,
    audit_digest: str,
) -> None:
    """Signed evidence of the decision, in its transaction: released, or withheld (by the
    originator, or by lapse: `state` and `basis` say which). About the release, not the
    delivery, so the recipient's and the platform's bundles stay as they were; the reason
    given is free text and stays out (the exclusion keeps it)."""
    kind = (
        EvidenceKind.RELEASED if release.state == ReleaseState.RELEASED else EvidenceKind.WITHHELD
    )
    details = {
        "release_id": str(release.id),
        "response_id": str(delivery.response_id),
        "delivery_id": str(delivery.id),
        "recipient": delivery.jurisdiction,
        "originator": release.originator,
        "state": release.state,
        "basis": release.basis,
    }
    await evidence.record(
        session,
        Fact(
            kind=kind,
            subject_type=RELEASE_SUBJECT,
            subject_id=str(release.id),
            actor=actor,
            details=details,
            audit_digest=audit_digest,
        ),
    )


async def evidence_bundle(
    session: AsyncSession, *, release_id: uuid.UUID, originator: str
) -> EvidenceBundle:
    """The signed evidence of a release decision, for its originator only (404 otherwise)."""
    release = await session.get(Release, release_id)
    if release is None or release.originator != originator:
        raise NotFound("no such release")
    return await evidence.subject_bundle(
        session, subject_type=RELEASE_SUBJECT, subject_id=str(release.id)
    )


def _exclude(
    session: AsyncSession,
    delivery: Delivery,
    reason: Reason,
    why: str | None,
    now: datetime,
    prefix: str,
) -> None:
    """The jurisdiction ends excluded: an exclusion row (the originator's reason kept in its
    detail) and its fan-out log event."""
    lapsed = reason is Reason.RELEASE_LAPSED
    detail = withheld_detail(delivery.jurisdiction, lapsed)
    if why:
        detail = f"{detail} Reason given: {why}"
    ident = uuid.uuid5(RELEASE_NAMESPACE, f"exclusion:{delivery.id}")
    session.add(
        Exclusion(
            id=ident,
            response_id=delivery.response_id,
            jurisdiction=delivery.jurisdiction,
            case_id=delivery.case_id,
            reason=reason.value,
            detail=detail,
            created_at=now,
        )
    )
    event = JurisdictionsExcluded(
        response_id=delivery.response_id,
        decided_at=now,
        exclusions=[
            ExcludedJurisdiction(
                exclusion_id=ident,
                jurisdiction=delivery.jurisdiction,
                reason=reason.value,
                detail=detail,
            )
        ],
    )
    key = str(delivery.response_id)
    outbox.add(session, event, key=key, subject=key, prefix=prefix, event_id=ident)


async def lapse_due(session: AsyncSession, *, now: datetime, prefix: str) -> int:
    """Held deliveries nobody decided on in time end excluded as RELEASE_LAPSED."""
    due = await repository.held_due(session, lapses_before=now, unreminded=False)
    for release in due:
        delivery = await session.get(Delivery, release.delivery_id, with_for_update=True)
        assert delivery is not None
        await _settle(
            session,
            release,
            delivery,
            ReleaseState.LAPSED,
            ReleaseBasis.NOT_DECIDED_IN_TIME,
            now,
            prefix=prefix,
        )
        _exclude(session, delivery, Reason.RELEASE_LAPSED, None, now, prefix)
        entry = await audit.append(
            session,
            actor="router",
            action="release.lapsed",
            subject_type="delivery",
            subject_id=str(delivery.id),
            details={"jurisdiction": delivery.jurisdiction, "release_id": str(release.id)},
        )
        await _prove(session, release, delivery, actor="router", audit_digest=entry)
    await session.flush()
    return len(due)


async def remind_due(
    session: AsyncSession, *, now: datetime, remind_before: timedelta, prefix: str
) -> int:
    """Remind the originator, once, of each hold that lapses within `remind_before`."""
    due = await repository.held_due(session, lapses_before=now + remind_before, unreminded=True)
    for release in due:
        resp = await session.get(CooperationResponse, release.response_id)
        assert resp is not None
        row = {
            "id": release.id,
            "originator": release.originator,
            "requesting_case_id": release.requesting_case_id,
            "jurisdiction": release.jurisdiction,
            "lapses_at": release.lapses_at,
        }
        _request(session, row, resp, reminder=True, at=now, prefix=prefix)
        release.reminded_at = now
    await session.flush()
    return len(due)


async def released_unpublished(session: AsyncSession) -> list[uuid.UUID]:
    """The deliveries the router should publish now that they were released."""
    return await repository.released_unpublished(session)
