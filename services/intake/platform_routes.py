"""The platform's side of legal requests: its inbox of orders and the steps it may take.

Platforms call with their `platform` claim tokens and the `responses:write` scope (the same
law-enforcement response team that submits responses); answers go to `POST /v1/responses`
with `request_id`.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.intake.deps import ContextDep, PlatformDep, SessionmakerDep
from services.intake.requests_routes import NowDep
from services.registry.requests import service as requests
from services.registry.requests import steps
from services.registry.requests.rules import RequestState
from services.registry.requests.schemas import (
    ClarificationRequest,
    PreservationConfirmation,
    Refusal,
    RequestOut,
)
from shared.auth.principal import Principal
from shared.db import transaction
from shared.schemas import MAX_PAGE, Page

router = APIRouter(prefix="/v1/platform", tags=["platform"])
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"page size, at most {MAX_PAGE}")]


def _viewer(principal: Principal) -> requests.Viewer:
    assert principal.platform is not None  # PlatformDep refuses tokens without the claim
    return requests.Viewer(client_id=principal.client_id, platform=principal.platform)


@router.get("/requests", response_model=Page[RequestOut])
async def platform_inbox(
    principal: PlatformDep,
    sm: SessionmakerDep,
    limit: Limit = 50,
    cursor: str | None = None,
    state: RequestState | None = None,
) -> Page[RequestOut]:
    """The requests addressed to the calling platform, newest first."""
    async with transaction(sm) as session:
        items, nxt = await requests.list_for(
            session, viewer=_viewer(principal), limit=limit, cursor=cursor, state=state
        )
    return Page[RequestOut](items=items, next_cursor=nxt)


@router.get("/requests/{request_id}", response_model=RequestOut)
async def platform_request(
    request_id: uuid.UUID, principal: PlatformDep, sm: SessionmakerDep
) -> RequestOut:
    async with transaction(sm) as session:
        return await requests.read(session, request_id=request_id, viewer=_viewer(principal))


@router.post("/requests/{request_id}/acknowledge", response_model=RequestOut)
async def acknowledge_request(
    request_id: uuid.UUID, principal: PlatformDep, sm: SessionmakerDep, ctx: ContextDep, now: NowDep
) -> RequestOut:
    async with transaction(sm) as session:
        return await steps.acknowledge(
            session, request_id=request_id, viewer=_viewer(principal), ctx=ctx, now=now
        )


@router.post("/requests/{request_id}/request-clarification", response_model=RequestOut)
async def ask_for_clarification(
    request_id: uuid.UUID,
    data: ClarificationRequest,
    principal: PlatformDep,
    sm: SessionmakerDep,
    ctx: ContextDep,
    now: NowDep,
) -> RequestOut:
    """Annex III grounds; the response clock stops until the authority clarifies."""
    async with transaction(sm) as session:
        return await steps.request_clarification(
            session, request_id=request_id, viewer=_viewer(principal), data=data, ctx=ctx, now=now
        )


@router.post("/requests/{request_id}/refuse", response_model=RequestOut)
async def refuse_request(
    request_id: uuid.UUID,
    data: Refusal,
    principal: PlatformDep,
    sm: SessionmakerDep,
    ctx: ContextDep,
    now: NowDep,
) -> RequestOut:
    async with transaction(sm) as session:
        return await steps.refuse(
            session, request_id=request_id, viewer=_viewer(principal), data=data, ctx=ctx, now=now
        )


@router.post("/requests/{request_id}/confirm-preserved", response_model=RequestOut)
async def confirm_preserved(
    request_id: uuid.UUID,
    data: PreservationConfirmation,
    principal: PlatformDep,
    sm: SessionmakerDep,
    ctx: ContextDep,
    now: NowDep,
) -> RequestOut:
    async with transaction(sm) as session:
        return await steps.confirm_preserved(
            session, request_id=request_id, viewer=_viewer(principal), data=data, ctx=ctx, now=now
        )
