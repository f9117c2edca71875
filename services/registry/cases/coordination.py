"""Coordination by consent: a case naming a coordinating member waits for that member.

A third country takes part through a coordinating member state, but naming a coordinator is
not the same as having one. A case that names one starts `pending_coordination` (no standing,
no link notices); the named member accepts (the case opens and is cross-matched) or declines
(the case is suspended for good); having accepted, it may later withdraw, which suspends the
case with the reason. Only the named member sees or answers these requests: anyone else gets
NotFound, as for any case that is not theirs. Each step is audited and told to the opener.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.audit import service as audit
from services.registry.cases import links, rules
from services.registry.cases.models import Case, CaseSelector
from services.registry.cases.rules import CaseStatus, CoordinationDecision, CoordinationState
from services.registry.cases.schemas import CaseOut
from services.registry.context import Actor, Context, encode_cursor, keyset_page
from services.registry.store import outbox
from shared.errors import NotFound
from shared.events import CaseStatusChanged, CoordinationDecided, CoordinationRequested
from shared.schemas import Strict
from shared.text import StorableText

MAX_REASON = 2000
Reason = Annotated[StorableText, Field(min_length=1, max_length=MAX_REASON)]


class CoordinationAnswer(Strict):
    decision: CoordinationDecision
    reason: Reason | None = None


class CoordinationWithdrawal(Strict):
    reason: Reason


class CoordinationOut(Strict):
    """A coordination request as the named member sees it: metadata, no selectors."""

    case_id: uuid.UUID
    opened_by: str
    platform: str
    legal_basis: str
    offence_categories: list[str]
    case_status: CaseStatus
    coordination_state: CoordinationState
    reason: str | None
    requested_at: datetime
    updated_at: datetime


def request(case: CaseOut) -> outbox.Pending:
    """The event that tells the named member a case waits for its consent; registration
    queues it before its own event, and audits both in one entry."""
    assert case.coordinating_jurisdiction is not None
    event = CoordinationRequested(
        case_id=case.id,
        jurisdiction=case.coordinating_jurisdiction,
        opened_by=case.opened_by,
        platform=case.platform,
        requested_at=case.created_at,
    )
    key = str(case.id)
    return outbox.Pending(event, key=key, subject=key, jurisdiction=case.coordinating_jurisdiction)


def _out(case: Case) -> CoordinationOut:
    assert case.coordination_state is not None
    return CoordinationOut(
        case_id=case.id,
        opened_by=case.opened_by,
        platform=case.platform,
        legal_basis=case.legal_basis,
        offence_categories=list(case.offence_categories),
        case_status=CaseStatus(case.status),
        coordination_state=CoordinationState(case.coordination_state),
        reason=case.coordination_reason,
        requested_at=case.created_at,
        updated_at=case.updated_at,
    )


async def list_for(
    session: AsyncSession,
    *,
    coordinator: str,
    limit: int,
    cursor: str | None = None,
    state: CoordinationState | None = None,
) -> tuple[list[CoordinationOut], str | None]:
    """The cases that named `coordinator`, newest first, keyset-paginated."""
    query = select(Case).where(
        Case.coordinating_jurisdiction == coordinator, Case.coordination_state.is_not(None)
    )
    if state is not None:
        query = query.where(Case.coordination_state == state.value)
    query = keyset_page(
        query, Case.created_at, Case.id, cursor=cursor, limit=limit, newest_first=True
    )
    rows = (await session.scalars(query)).all()
    page = list(rows[:limit])
    nxt = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return [_out(c) for c in page], nxt


async def answer(
    session: AsyncSession,
    *,
    actor: Actor,
    case_id: uuid.UUID,
    decision: CoordinationDecision | None,
    reason: str | None,
    ctx: Context,
) -> CoordinationOut:
    """Accept or decline (`decision`), or withdraw (`decision` None), as the named member."""
    case = await session.get(Case, case_id, with_for_update=True)
    if case is None or case.coordinating_jurisdiction != actor.jurisdiction:
        raise NotFound("no such coordination request")
    current = CoordinationState(case.coordination_state) if case.coordination_state else None
    status, state = rules.coordination_outcome(CaseStatus(case.status), current, decision)
    previous = case.status
    now = datetime.now(UTC)
    case.status, case.coordination_state, case.coordination_reason = status, state, reason
    case.version, case.updated_at = case.version + 1, now
    await session.flush()
    _announce(session, case, ctx)
    await audit.append(
        session,
        actor=actor.client_id,
        action=f"case.coordination_{state.value}",
        subject_type="case",
        subject_id=str(case.id),
        details={"coordinator": actor.jurisdiction, "from": previous, "to": status.value},
    )
    if status is CaseStatus.OPEN:
        hashes = (
            await session.scalars(
                select(CaseSelector.value_hash).where(CaseSelector.case_id == case.id)
            )
        ).all()
        await links.cross_match(
            session,
            case_id=case.id,
            opened_by=case.opened_by,
            hashes=set(hashes),
            platform=case.platform,
            ctx=ctx,
        )
    return _out(case)


def _announce(session: AsyncSession, case: Case, ctx: Context) -> None:
    """The opener's notice on its inbox, and the status change on the cases topic."""
    assert case.coordinating_jurisdiction is not None
    assert case.coordination_state is not None
    decided = CoordinationDecided(
        case_id=case.id,
        jurisdiction=case.opened_by,
        coordinator=case.coordinating_jurisdiction,
        coordination_state=case.coordination_state,
        case_status=case.status,
        reason=case.coordination_reason,
        decided_at=case.updated_at,
    )
    key = str(case.id)
    prefix = ctx.topic_prefix
    outbox.add(session, decided, key=key, subject=key, prefix=prefix, jurisdiction=case.opened_by)
    changed = CaseStatusChanged(
        case_id=case.id,
        opened_by=case.opened_by,
        status=case.status,
        version=case.version,
        changed_at=case.updated_at,
    )
    outbox.add(session, changed, key=key, subject=key, prefix=prefix)
