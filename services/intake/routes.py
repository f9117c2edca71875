"""Intake's REST surface: thin adapters from HTTP to the registry's use cases."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.deps import (
    CaseReaderDep,
    CaseWriterDep,
    ContextDep,
    IdempotencyKeyHeader,
    InboxReaderDep,
    PlatformDep,
    SessionmakerDep,
)
from services.intake.state import IntakeState
from services.registry.cases import service as cases
from services.registry.cases.rules import CaseStatus
from services.registry.cases.schemas import CaseCreate, CaseOut, CaseStatusUpdate
from services.registry.deliveries import service as inbox
from services.registry.deliveries.schemas import Acknowledgement, AcknowledgementIn, InboxItem
from services.registry.evidence import service as evidence
from services.registry.responses import service as responses
from services.registry.responses.schemas import ResponseAccepted, ResponseCreate
from services.registry.store import idempotency
from shared.auth.fast_route import FastRoute
from shared.db import transaction
from shared.errors import ValidationFailed
from shared.schemas import MAX_PAGE, Page
from shared.state import state_of
from shared.web import created_response

router = APIRouter(prefix="/v1")
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"page size, at most {MAX_PAGE}")]


async def register_case(
    data: CaseCreate,
    request: Request,
    actor: CaseWriterDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Register a case for the caller's jurisdiction; links to matching cases are reported."""
    # Intake's hottest route reads the sessionmaker and context from the state itself: each
    # dependency FastAPI solves costs about as much as reading them (ADR 0009, BENCHMARKS.md).
    state = state_of(request, IntakeState)
    sm, ctx = state.sessionmaker, state.context

    async def register(session: AsyncSession) -> CaseOut:
        return await cases.register(session, actor=actor, data=data, ctx=ctx)

    async def register_alone() -> CaseOut:
        return await cases.register_alone(sm, actor=actor, data=data, ctx=ctx)

    status, body, replayed = await idempotency.create_once(
        sm,
        client_id=actor.client_id,
        key=idempotency_key,
        path=request.url.path,
        data=data,
        status=201,
        create=register,
        create_alone=register_alone,
    )
    return created_response(status, body, replayed=replayed, location=f"/v1/cases/{body['id']}")


# A FastRoute: the common registration skips FastAPI's generic dependency solver, calling the
# dependencies declared above itself; anything else is FastAPI's (shared/auth/fast_route.py).
router.add_api_route(
    "/cases",
    register_case,
    methods=["POST"],
    status_code=201,
    response_model=CaseOut,
    tags=["cases"],
    route_class_override=FastRoute,
)


@router.get("/cases", response_model=Page[CaseOut], tags=["cases"])
async def list_cases(
    actor: CaseReaderDep,
    sm: SessionmakerDep,
    limit: Limit = 50,
    cursor: str | None = None,
    platform: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")] = None,
    status: CaseStatus | None = None,
) -> Page[CaseOut]:
    """The caller's own cases, newest first."""
    async with transaction(sm) as session:
        items, nxt = await cases.list_for(
            session,
            jurisdiction=actor.jurisdiction,
            limit=limit,
            cursor=cursor,
            platform=platform,
            status=status,
        )
    return Page[CaseOut](items=items, next_cursor=nxt)


@router.get("/cases/{case_id}", response_model=CaseOut, tags=["cases"])
async def get_case(case_id: uuid.UUID, actor: CaseReaderDep, sm: SessionmakerDep) -> JSONResponse:
    async with transaction(sm) as session:
        out = await cases.read(session, case_id=case_id, jurisdiction=actor.jurisdiction)
    return JSONResponse(out.model_dump(mode="json"), headers={"ETag": f'"{out.version}"'})


@router.patch("/cases/{case_id}", response_model=CaseOut, tags=["cases"])
async def update_case_status(
    case_id: uuid.UUID,
    data: CaseStatusUpdate,
    actor: CaseWriterDep,
    sm: SessionmakerDep,
    ctx: ContextDep,
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> JSONResponse:
    """Suspend, reopen or close a case; a stale If-Match or version gets 412."""
    expected = data.version
    if if_match is not None:
        tag = if_match.strip().removeprefix("W/").strip('"')
        if not tag.isdigit():
            raise ValidationFailed("If-Match must carry the case version as its ETag")
        expected = int(tag)
    async with transaction(sm) as session:
        out = await cases.change_status(
            session,
            actor=actor,
            case_id=case_id,
            status=data.status,
            expected_version=expected,
            ctx=ctx,
        )
    return JSONResponse(out.model_dump(mode="json"), headers={"ETag": f'"{out.version}"'})


@router.post("/responses", status_code=202, response_model=ResponseAccepted, tags=["responses"])
async def submit_response(
    data: ResponseCreate,
    request: Request,
    principal: PlatformDep,
    sm: SessionmakerDep,
    ctx: ContextDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Accept a platform's cooperation response; fan-out follows asynchronously."""
    assert principal.platform is not None
    platform = principal.platform

    async def submit(session: AsyncSession) -> ResponseAccepted:
        try:
            return await responses.submit(
                session, platform=platform, client_id=principal.client_id, data=data, ctx=ctx
            )
        except ValidationFailed as refused:  # signed evidence of the refusal, in the 422
            client = principal.client_id
            raise await evidence.record_rejection(
                sm, platform=platform, client_id=client, error=refused
            ) from None

    status, body, replayed = await idempotency.create_once(
        sm,
        client_id=principal.client_id,
        key=idempotency_key,
        path=request.url.path,
        data=data,
        status=202,
        create=submit,
    )
    return created_response(status, body, replayed=replayed, location=f"/v1/responses/{body['id']}")


@router.get("/inbox", response_model=Page[InboxItem], tags=["inbox"])
async def list_inbox(
    actor: InboxReaderDep,
    sm: SessionmakerDep,
    limit: Limit = 50,
    cursor: str | None = None,
    unacknowledged: bool = False,
) -> Page[InboxItem]:
    """Deliveries addressed to the caller's jurisdiction, oldest first."""
    async with transaction(sm) as session:
        items, nxt = await inbox.list_for(
            session,
            jurisdiction=actor.jurisdiction,
            limit=limit,
            cursor=cursor,
            unacknowledged=unacknowledged,
        )
    return Page[InboxItem](items=items, next_cursor=nxt)


@router.get("/inbox/{delivery_id}", response_model=InboxItem, tags=["inbox"])
async def get_delivery(
    delivery_id: uuid.UUID, actor: InboxReaderDep, sm: SessionmakerDep
) -> InboxItem:
    async with transaction(sm) as session:
        return await inbox.read(session, delivery_id=delivery_id, jurisdiction=actor.jurisdiction)


@router.post("/inbox/{delivery_id}/ack", response_model=Acknowledgement, tags=["inbox"])
async def acknowledge(
    delivery_id: uuid.UUID,
    actor: InboxReaderDep,
    sm: SessionmakerDep,
    ctx: ContextDep,
    data: AcknowledgementIn | None = None,
) -> Acknowledgement:
    """Proof of retrieval; acknowledging again returns the original time. An H3 delivery needs
    `{"accept_conditions": true}`: the acceptance of its conditions is recorded with it."""
    accept = data is not None and data.accept_conditions
    async with transaction(sm) as session:
        return await inbox.acknowledge(
            session, actor=actor, delivery_id=delivery_id, ctx=ctx, accept_conditions=accept
        )
