"""The authority's side of legal requests: issue, read with history, withdraw, extend,
clarify; and the enforcing state's objection. Thin adapters over `registry.requests`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.deps import (
    CaseReaderDep,
    CaseWriterDep,
    ContextDep,
    IdempotencyKeyHeader,
    SessionmakerDep,
)
from services.intake.state import IntakeState
from services.registry.evidence.schemas import EvidenceBundle
from services.registry.requests import service as requests
from services.registry.requests import steps
from services.registry.requests.rules import Clock, RequestState
from services.registry.requests.schemas import (
    Clarification,
    Objection,
    RequestCreate,
    RequestOut,
    Withdrawal,
)
from services.registry.store import idempotency
from shared.db import transaction
from shared.schemas import MAX_PAGE, Page
from shared.state import state_of
from shared.web import created_response

router = APIRouter(prefix="/v1", tags=["requests"])
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"page size, at most {MAX_PAGE}")]


async def _clock(request: Request) -> Clock:
    """The app's clock: the wall clock unless a test put another on its state."""
    return state_of(request, IntakeState).clock


async def _now(clock: Annotated[Clock, Depends(_clock)]) -> datetime:
    return clock()


NowDep = Annotated[datetime, Depends(_now)]


@router.post("/requests", status_code=201, response_model=RequestOut)
async def issue_request(
    data: RequestCreate,
    request: Request,
    actor: CaseWriterDep,
    sm: SessionmakerDep,
    ctx: ContextDep,
    now: NowDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Issue an order to the platform of one of the caller's open cases."""

    async def issue(session: AsyncSession) -> RequestOut:
        return await requests.issue(session, actor=actor, data=data, ctx=ctx, now=now)

    status, body, replayed = await idempotency.create_once(
        sm,
        client_id=actor.client_id,
        key=idempotency_key,
        path=request.url.path,
        data=data,
        status=201,
        create=issue,
    )
    return created_response(status, body, replayed=replayed, location=f"/v1/requests/{body['id']}")


@router.get("/requests", response_model=Page[RequestOut])
async def list_requests(
    actor: CaseReaderDep,
    sm: SessionmakerDep,
    limit: Limit = 50,
    cursor: str | None = None,
    case_id: uuid.UUID | None = None,
    state: RequestState | None = None,
) -> Page[RequestOut]:
    """The caller's requests and those it reviews as enforcing state, newest first."""
    async with transaction(sm) as session:
        items, nxt = await requests.list_for(
            session,
            viewer=requests.Viewer.of(actor),
            limit=limit,
            cursor=cursor,
            state=state,
            case_id=case_id,
        )
    return Page[RequestOut](items=items, next_cursor=nxt)


@router.get("/requests/{request_id}", response_model=RequestOut)
async def get_request(
    request_id: uuid.UUID, actor: CaseReaderDep, sm: SessionmakerDep
) -> RequestOut:
    """One request with its full state history."""
    async with transaction(sm) as session:
        return await requests.read(session, request_id=request_id, viewer=requests.Viewer.of(actor))


@router.get("/requests/{request_id}/evidence", response_model=EvidenceBundle)
async def get_request_evidence(
    request_id: uuid.UUID, actor: CaseReaderDep, sm: SessionmakerDep
) -> EvidenceBundle:
    """Signed evidence that the order was sent and answered, for the issuing authority; it
    verifies offline against `/.well-known/evidence-jwks.json`."""
    async with transaction(sm) as session:
        return await requests.evidence_bundle(
            session, request_id=request_id, jurisdiction=actor.jurisdiction
        )


@router.post("/requests/{request_id}/withdraw", response_model=RequestOut)
async def withdraw_request(
    request_id: uuid.UUID,
    data: Withdrawal,
    actor: CaseWriterDep,
    sm: SessionmakerDep,
    ctx: ContextDep,
    now: NowDep,
) -> RequestOut:
    async with transaction(sm) as session:
        return await steps.withdraw(
            session,
            request_id=request_id,
            viewer=requests.Viewer.of(actor),
            data=data,
            ctx=ctx,
            now=now,
        )


@router.post("/requests/{request_id}/extend", response_model=RequestOut)
async def extend_preservation(
    request_id: uuid.UUID, actor: CaseWriterDep, sm: SessionmakerDep, ctx: ContextDep, now: NowDep
) -> RequestOut:
    """Extend a preservation once, by 30 days."""
    async with transaction(sm) as session:
        return await steps.extend(
            session, request_id=request_id, viewer=requests.Viewer.of(actor), ctx=ctx, now=now
        )


@router.post("/requests/{request_id}/clarify", response_model=RequestOut)
async def clarify_request(
    request_id: uuid.UUID,
    data: Clarification,
    actor: CaseWriterDep,
    sm: SessionmakerDep,
    ctx: ContextDep,
    now: NowDep,
) -> RequestOut:
    """Answer the platform's request for clarification; its clock runs again."""
    async with transaction(sm) as session:
        return await steps.clarify(
            session,
            request_id=request_id,
            viewer=requests.Viewer.of(actor),
            data=data,
            ctx=ctx,
            now=now,
        )


@router.post("/requests/{request_id}/objection", response_model=RequestOut)
async def decide_objection(
    request_id: uuid.UUID,
    data: Objection,
    actor: CaseWriterDep,
    sm: SessionmakerDep,
    ctx: ContextDep,
    now: NowDep,
) -> RequestOut:
    """The enforcing state raises grounds for refusal, or says it raises none."""
    async with transaction(sm) as session:
        return await steps.object_or_clear(
            session,
            request_id=request_id,
            viewer=requests.Viewer.of(actor),
            data=data,
            ctx=ctx,
            now=now,
        )
