"""Case use cases: register (with cross-matching), read, list, change status.

Every function takes the caller's session and runs inside the caller's transaction; the
opener always comes from the authenticated principal, never from the request body.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.audit import service as audit
from services.registry.cases import coordination, links, repository, rules, selectors
from services.registry.cases.models import Case, CaseSelector
from services.registry.cases.rules import CaseStatus, CoordinationState, ReleasePolicy
from services.registry.cases.schemas import CaseCreate, CaseOut, SelectorOut
from services.registry.context import Actor, Context, encode_cursor, keyset_page
from services.registry.store import outbox
from shared.db import single_statements, transaction
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
    """Register a case, its selectors, links to matching cases, audit entry and events, in
    the caller's transaction.

    The answer is built from what was inserted rather than read back: every column is known.
    """
    try:
        out, plan = _plan(actor, data, ctx)
    except ValidationFailed:
        # the references are refused before the selectors, as they always were
        _refuse(actor, data, await repository.references(session, _reading(actor, data)))
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
        await outbox.insert_rows(session, plan.outbox)
        await audit.insert_rows(session, plan.audit)
        return out
    return _registered_or_refused(actor, data, result, out)


async def register_alone(
    sm: async_sessionmaker[AsyncSession], *, actor: Actor, data: CaseCreate, ctx: Context
) -> CaseOut:
    """`register` as a transaction of its own, in one round trip when no open case of another
    jurisdiction shares a selector. A hit, whose links must commit with the case, and a
    refused selector go through `register` in a transaction instead; the first try wrote
    nothing."""
    try:
        out, plan = _plan(actor, data, ctx)
    except ValidationFailed:
        plan = None
    if plan is not None:
        async with single_statements(sm) as conn:
            result = await repository.register_alone(conn, plan)
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


def _plan(actor: Actor, data: CaseCreate, ctx: Context) -> tuple[CaseOut, repository.Registration]:
    """The case as its opener will see it, and every row its registration writes."""
    hashed = _hashed_selectors(ctx, data)
    out = _new_case(actor, data, hashed)
    case_id = str(out.id)
    events = [outbox.Pending(_registered(out), key=case_id, subject=case_id)]
    if out.status is not CaseStatus.OPEN:
        events.insert(0, coordination.request(out))
    audit_rows, _ = audit.queued_rows(
        [
            {
                "actor": actor.client_id,
                "action": "case.registered",
                "subject_type": "case",
                "subject_id": case_id,
                "details": {
                    "opened_by": out.opened_by,
                    "platform": out.platform,
                    "selectors": len(hashed),
                    "coordinator": out.coordinating_jurisdiction,
                    "status": out.status.value,
                    "release_policy": out.release_policy.value,
                },
            }
        ]
    )
    plan = repository.Registration(
        case=out.model_dump(exclude={"selectors"}) | {"created_by_client": actor.client_id},
        selectors=[
            {"kind": kind, "value_hash": digest, "masked": masked}
            for (kind, digest), masked in hashed.items()
        ],
        accepted=_accepted(actor.jurisdiction, data.coordinating_jurisdiction, data.lead_case_id),
        lock_keys=[f"reference:{actor.jurisdiction}:{data.reference}"]
        + [f"selector:{data.platform}:{digest}" for _, digest in hashed],
        outbox=outbox.rows(events, prefix=ctx.topic_prefix),
        audit=audit_rows,
    )
    return out, plan


def _reading(actor: Actor, data: CaseCreate) -> repository.Registration:
    """A registration that names only its references, to read them and write nothing."""
    case = {
        "id": None,
        "opened_by": actor.jurisdiction,
        "platform": data.platform,
        "coordinating_jurisdiction": data.coordinating_jurisdiction,
        "lead_case_id": data.lead_case_id,
    }
    return repository.Registration(case, [], "[]", [], [], [])


@lru_cache(maxsize=4096)
def _accepted_json(opener: str, coordinator: str | None, *, lead_given: bool) -> str:
    accepted = rules.accepted_references(opener, coordinator, lead_given=lead_given)
    return orjson.dumps([dataclasses.asdict(refs) for refs in accepted]).decode()


def _accepted(opener: str, coordinator: str | None, lead: uuid.UUID | None) -> str:
    return _accepted_json(opener, coordinator, lead_given=lead is not None)


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
