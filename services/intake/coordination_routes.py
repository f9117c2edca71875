"""Intake's coordination API: a member state answers the cases that name it as coordinator."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.intake.deps import CaseReaderDep, CaseWriterDep, ContextDep, SessionmakerDep
from services.registry.cases import coordination
from services.registry.cases.coordination import (
    CoordinationAnswer,
    CoordinationOut,
    CoordinationWithdrawal,
)
from services.registry.cases.rules import CoordinationState
from shared.db import transaction
from shared.schemas import MAX_PAGE, Page

router = APIRouter(prefix="/v1", tags=["coordination"])
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"page size, at most {MAX_PAGE}")]


@router.get("/coordination", response_model=Page[CoordinationOut])
async def list_coordination(
    actor: CaseReaderDep,
    sm: SessionmakerDep,
    limit: Limit = 50,
    cursor: str | None = None,
    state: CoordinationState | None = None,
) -> Page[CoordinationOut]:
    """The cases that name the caller as coordinator, newest first (filter by `state`)."""
    async with transaction(sm) as session:
        items, nxt = await coordination.list_for(
            session, coordinator=actor.jurisdiction, limit=limit, cursor=cursor, state=state
        )
    return Page[CoordinationOut](items=items, next_cursor=nxt)


@router.post("/cases/{case_id}/coordination", response_model=CoordinationOut)
async def answer_coordination(
    case_id: uuid.UUID,
    data: CoordinationAnswer,
    actor: CaseWriterDep,
    sm: SessionmakerDep,
    ctx: ContextDep,
) -> CoordinationOut:
    """Accept (the case opens and gains standing) or decline (it is suspended for good).
    Only the named coordinator may; for anyone else the request does not exist."""
    async with transaction(sm) as session:
        return await coordination.answer(
            session,
            actor=actor,
            case_id=case_id,
            decision=data.decision,
            reason=data.reason,
            ctx=ctx,
        )


@router.post("/cases/{case_id}/coordination/withdrawal", response_model=CoordinationOut)
async def withdraw_coordination(
    case_id: uuid.UUID,
    data: CoordinationWithdrawal,
    actor: CaseWriterDep,
    sm: SessionmakerDep,
    ctx: ContextDep,
) -> CoordinationOut:
    """The coordinator withdraws: the case is suspended with the reason; standing stops."""
    async with transaction(sm) as session:
        return await coordination.answer(
            session, actor=actor, case_id=case_id, decision=None, reason=data.reason, ctx=ctx
        )
