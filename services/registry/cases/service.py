"""Case use cases: register (with cross-matching), read, list, change status.

Every function takes the caller's session and runs inside the caller's transaction; the
opener always comes from the authenticated principal, never from the request body.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.audit import service as audit
from services.registry.cases import coordination, links, repository, rules, selectors
from services.registry.cases.models import Case, CaseSelector
from services.registry.cases.rules import CaseStatus, CoordinationState, ReleasePolicy
from services.registry.cases.schemas import CaseCreate, CaseOut, SelectorOut
from services.registry.context import Actor, Context, encode_cursor, keyset_page
from services.registry.store import locks, outbox
from shared.errors import NotFound, PreconditionFailed, ValidationFailed
from shared.events import CaseRegistered, CaseStatusChanged


def _hashed_selectors(ctx: Context, data: CaseCreate) -> dict[tuple[str, str], str]:
    """(kind, hash) -> masked form; invalid selectors are refused with their position."""
    out: dict[tuple[str, str], str] = {}
    for index, sel in enumerate(data.selectors):
        try:
            normalised = selectors.normalise(sel.kind, sel.value)
        except selectors.InvalidSelector as exc:
            raise ValidationFailed(f"selectors[{index}]: {exc}") from exc
        digest = selectors.selector_hash(ctx.hmac_key, sel.kind, normalised)
        out[(sel.kind.value, digest)] = selectors.mask(sel.kind, normalised)
    return out


async def register(
    session: AsyncSession, *, actor: Actor, data: CaseCreate, ctx: Context
) -> CaseOut:
    """Register a case, its selectors, links to matching cases, audit entry and events.

    The answer is built from what was inserted rather than read back: every column is known.
    """
    refs = await repository.references(
        session,
        opener=actor.jurisdiction,
        coordinator=data.coordinating_jurisdiction,
        platform=data.platform,
        lead_case_id=data.lead_case_id,
    )
    rules.check_references(
        opener_code=actor.jurisdiction,
        coordinator_code=data.coordinating_jurisdiction,
        platform=data.platform,
        lead_case_id=data.lead_case_id,
        refs=refs,
    )
    hashed = _hashed_selectors(ctx, data)
    await locks.hold(
        session,
        [f"reference:{actor.jurisdiction}:{data.reference}"]
        + [f"selector:{data.platform}:{digest}" for _, digest in hashed],
    )
    out = _new_case(actor, data, hashed)
    row = out.model_dump(exclude={"selectors"}) | {"created_by_client": actor.client_id}
    rows = [(kind, digest, masked) for (kind, digest), masked in hashed.items()]
    if not await repository.insert_case(session, row, rows):
        raise ValidationFailed(
            f"{actor.jurisdiction} already registered reference {data.reference!r}"
        )
    if out.status is CaseStatus.OPEN:
        await links.cross_match(
            session,
            case_id=out.id,
            opened_by=out.opened_by,
            hashes={digest for _, digest in hashed},
            platform=out.platform,
            ctx=ctx,
        )
    else:
        coordination.request(session, out, ctx)
    await outbox.add_many(
        session,
        [outbox.Pending(_registered(out), key=str(out.id), subject=str(out.id))],
        prefix=ctx.topic_prefix,
    )
    await audit.append(
        session,
        actor=actor.client_id,
        action="case.registered",
        subject_type="case",
        subject_id=str(out.id),
        details={
            "opened_by": out.opened_by,
            "platform": out.platform,
            "selectors": len(hashed),
            "coordinator": out.coordinating_jurisdiction,
            "status": out.status.value,
            "release_policy": out.release_policy.value,
        },
    )
    return out


def _new_case(actor: Actor, data: CaseCreate, hashed: dict[tuple[str, str], str]) -> CaseOut:
    """The case about to be inserted, as its opener will see it."""
    now = datetime.now(UTC)
    status, coordination_state = rules.initial_status(data.coordinating_jurisdiction)
    return CaseOut(
        id=uuid.uuid4(),
        reference=data.reference,
        opened_by=actor.jurisdiction,
        platform=data.platform,
        coordinating_jurisdiction=data.coordinating_jurisdiction,
        lead_case_id=data.lead_case_id,
        offence_categories=list(data.offence_categories),
        legal_basis=data.legal_basis,
        selectors=[
            SelectorOut(kind=selectors.SelectorKind(kind), masked=masked)
            for (kind, _), masked in hashed.items()
        ],
        status=status,
        emergency=data.emergency,
        release_policy=data.release_policy,
        coordination_state=coordination_state,
        version=1,
        created_at=now,
        updated_at=now,
    )


def _registered(out: CaseOut) -> CaseRegistered:
    return CaseRegistered(
        case_id=out.id,
        reference=out.reference,
        opened_by=out.opened_by,
        platform=out.platform,
        coordinating_jurisdiction=out.coordinating_jurisdiction,
        lead_case_id=out.lead_case_id,
        emergency=out.emergency,
        registered_at=out.created_at,
    )


async def read(session: AsyncSession, *, case_id: uuid.UUID, jurisdiction: str) -> CaseOut:
    """A case as its opener sees it; any other jurisdiction gets NotFound (no existence leak)."""
    case = await session.get(Case, case_id)
    if case is None or case.opened_by != jurisdiction:
        raise NotFound("no such case")
    sels = (
        await session.scalars(
            select(CaseSelector).where(CaseSelector.case_id == case.id).order_by(CaseSelector.id)
        )
    ).all()
    return _out(case, sels)


def _out(case: Case, sels: Sequence[CaseSelector]) -> CaseOut:
    return CaseOut(
        id=case.id,
        reference=case.reference,
        opened_by=case.opened_by,
        platform=case.platform,
        coordinating_jurisdiction=case.coordinating_jurisdiction,
        lead_case_id=case.lead_case_id,
        offence_categories=list(case.offence_categories),
        legal_basis=case.legal_basis,
        selectors=[SelectorOut(kind=s.kind, masked=s.masked) for s in sels],
        status=CaseStatus(case.status),
        emergency=case.emergency,
        release_policy=ReleasePolicy(case.release_policy),
        coordination_state=(
            CoordinationState(case.coordination_state) if case.coordination_state else None
        ),
        version=case.version,
        created_at=case.created_at,
        updated_at=case.updated_at,
    )


async def list_for(
    session: AsyncSession,
    *,
    jurisdiction: str,
    limit: int,
    cursor: str | None = None,
    platform: str | None = None,
    status: CaseStatus | None = None,
) -> tuple[list[CaseOut], str | None]:
    """The opener's own cases, newest first, keyset-paginated."""
    query = select(Case).where(Case.opened_by == jurisdiction)
    if platform:
        query = query.where(Case.platform == platform)
    if status:
        query = query.where(Case.status == status.value)
    query = keyset_page(
        query, Case.created_at, Case.id, cursor=cursor, limit=limit, newest_first=True
    )
    rows = (await session.scalars(query)).all()
    page = list(rows[:limit])
    sels = (
        await session.scalars(
            select(CaseSelector)
            .where(CaseSelector.case_id.in_([c.id for c in page]))
            .order_by(CaseSelector.id)
        )
    ).all()
    by_case: dict[uuid.UUID, list[CaseSelector]] = {}
    for s in sels:
        by_case.setdefault(s.case_id, []).append(s)
    items = [_out(c, by_case.get(c.id, [])) for c in page]
    nxt = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return items, nxt


async def change_status(
    session: AsyncSession,
    *,
    actor: Actor,
    case_id: uuid.UUID,
    status: CaseStatus,
    expected_version: int | None,
    ctx: Context,
) -> CaseOut:
    """Move a case between states under optimistic concurrency (stale version: 412)."""
    case = await session.get(Case, case_id, with_for_update=True)
    if case is None or case.opened_by != actor.jurisdiction:
        raise NotFound("no such case")
    if expected_version is not None and expected_version != case.version:
        raise PreconditionFailed(
            f"case is at version {case.version}, not {expected_version}",
            extra={"current_version": case.version},
        )
    if case.status == status.value:
        return await read(session, case_id=case.id, jurisdiction=actor.jurisdiction)
    coordination_state = (
        CoordinationState(case.coordination_state) if case.coordination_state else None
    )
    if not rules.may_become(CaseStatus(case.status), status, coordination_state):
        raise ValidationFailed(f"a {case.status} case cannot become {status.value}")
    previous = case.status
    case.status, case.version, case.updated_at = status.value, case.version + 1, datetime.now(UTC)
    event = CaseStatusChanged(
        case_id=case.id,
        opened_by=case.opened_by,
        status=case.status,
        version=case.version,
        changed_at=case.updated_at,
    )
    outbox.add(session, event, key=str(case.id), subject=str(case.id), prefix=ctx.topic_prefix)
    await audit.append(
        session,
        actor=actor.client_id,
        action="case.status_changed",
        subject_type="case",
        subject_id=str(case.id),
        details={"from": previous, "to": case.status, "version": case.version},
    )
    await session.flush()
    return await read(session, case_id=case.id, jurisdiction=actor.jurisdiction)


async def set_release_policy(
    session: AsyncSession,
    *,
    actor: Actor,
    case_id: uuid.UUID,
    policy: ReleasePolicy,
) -> CaseOut:
    """The opener changes which held deliveries the hub may release without asking it.

    Applies to responses routed from now on; deliveries already held stay held."""
    case = await session.get(Case, case_id, with_for_update=True)
    if case is None or case.opened_by != actor.jurisdiction:
        raise NotFound("no such case")
    if case.release_policy != policy.value:
        previous = case.release_policy
        case.release_policy, case.version = policy.value, case.version + 1
        case.updated_at = datetime.now(UTC)
        await audit.append(
            session,
            actor=actor.client_id,
            action="case.release_policy_changed",
            subject_type="case",
            subject_id=str(case.id),
            details={"from": previous, "to": policy.value, "version": case.version},
        )
        await session.flush()
    return await read(session, case_id=case.id, jurisdiction=actor.jurisdiction)
