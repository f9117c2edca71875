"""Case use cases: register (with cross-matching), read, list, change status.

Every function takes the caller's session and runs inside the caller's transaction, but
`register_alone`, whose one statement is its own transaction; the opener always comes from the
authenticated principal, never from the request body.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.audit import service as audit
from services.registry.cases import links, registration, repository, rules, wake
from services.registry.cases.models import Case, CaseSelector
from services.registry.cases.rules import CaseStatus, CoordinationState, ReleasePolicy
from services.registry.cases.schemas import CaseCreate, CaseOut, SelectorOut
from services.registry.context import Actor, Context, encode_cursor, keyset_page
from services.registry.store import bulk, outbox
from shared.db import single_statements, transaction
from shared.errors import NotFound, PreconditionFailed, ValidationFailed
from shared.events import CaseStatusChanged


async def register(
    session: AsyncSession, *, actor: Actor, data: CaseCreate, ctx: Context
) -> CaseOut:
    """Register a case, its selectors, links to matching cases, audit entry and events, in
    the caller's transaction.

    The answer is built from what was inserted rather than read back: every column is known.
    """
    try:
        out, plan = registration.plan(actor, data, ctx)
    except ValidationFailed:
        # the references are refused before the selectors, as they always were
        _refuse(
            actor, data, await repository.references(session, registration.reading(actor, data))
        )
        raise
    result = await repository.register(session, plan)
    if result.outcome is repository.Outcome.MATCHED:
        await links.link(
            session,
            case_id=out.id,
            opened_by=out.opened_by,
            matches=result.matches,
            platform=out.platform,
            ctx=ctx,
        )
        await bulk.write(session, outbox.staged_rows(plan.outbox), audit.staged_rows(plan.audit))
        return out
    return _registered_or_refused(actor, data, result, out)


async def register_alone(
    sm: async_sessionmaker[AsyncSession], *, actor: Actor, data: CaseCreate, ctx: Context
) -> CaseOut:
    """`register` as a transaction of its own, in one round trip when no open case of another
    jurisdiction shares a selector. A hit, whose links must commit with the case, and a
    refused selector go through `register` in a transaction instead; the first try wrote
    nothing. The one statement does not wake the outbox relay: `wake` does, after it."""
    try:
        out, plan = registration.plan(actor, data, ctx)
    except ValidationFailed:
        plan = None
    if plan is not None:
        async with single_statements(sm) as conn:
            result = await repository.register_alone(conn, plan)
        if result.outcome is repository.Outcome.REGISTERED:
            wake.ring(sm)  # committed: its events NOTIFY the relay from here (migration 0016)
        if result.outcome is not repository.Outcome.HIT:
            return _registered_or_refused(actor, data, result, out)
    async with transaction(sm) as session:
        return await register(session, actor=actor, data=data, ctx=ctx)


def _registered_or_refused(
    actor: Actor, data: CaseCreate, result: repository.Result, out: CaseOut
) -> CaseOut:
    if result.outcome is repository.Outcome.REFUSED:
        _refuse(actor, data, result.refs)
        raise RuntimeError("register_case refused references that the rule accepts")
    if result.outcome is repository.Outcome.DUPLICATE:
        raise ValidationFailed(
            f"{actor.jurisdiction} already registered reference {data.reference!r}"
        )
    if result.outcome is not repository.Outcome.REGISTERED:
        raise RuntimeError(f"register_case answered {result.outcome}")
    return out


def _refuse(actor: Actor, data: CaseCreate, refs: rules.References) -> None:
    """Raise the rule's refusal of these references, if it refuses them."""
    rules.check_references(
        opener_code=actor.jurisdiction,
        coordinator_code=data.coordinating_jurisdiction,
        platform=data.platform,
        lead_case_id=data.lead_case_id,
        refs=refs,
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
