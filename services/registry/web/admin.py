"""The administrators' API over reference data; every route needs `registry:admin`.

Thin adapters over `services.registry.reference.service`: each request is one transaction,
holding the change and its audit entry, so a refused request leaves nothing behind.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.approvals.service import PendingChangeOut
from services.registry.reference import service as admin
from services.registry.reference.service import (
    JurisdictionOut,
    JurisdictionUpdate,
    PlatformCreate,
    PlatformOut,
    PlatformUpdate,
)
from services.registry.store import idempotency
from services.registry.web.deps import AdminDep, SessionmakerDep
from services.registry.webhooks import service as webhooks
from services.registry.webhooks.rules import EndpointState
from services.registry.webhooks.schemas import EndpointOut
from shared.db import transaction
from shared.schemas import MAX_PAGE, Page
from shared.web import created_response

router = APIRouter(prefix="/v1/registry", tags=["admin"])
CODE = r"^[A-Z]{2}$"
SLUG = r"^[a-z0-9][a-z0-9-]{1,62}$"
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"page size, at most {MAX_PAGE}")]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Retries with the same key get the first answer"),
]


@router.get("/jurisdictions", response_model=Page[JurisdictionOut])
async def list_jurisdictions(
    _caller: AdminDep,
    sm: SessionmakerDep,
    limit: Limit = MAX_PAGE,
    cursor: Annotated[str | None, Query(pattern=CODE)] = None,
) -> Page[JurisdictionOut]:
    async with transaction(sm) as session:
        items, nxt = await admin.list_jurisdictions(session, limit=limit, after=cursor)
    return Page[JurisdictionOut](items=items, next_cursor=nxt)


@router.patch(
    "/jurisdictions/{code}",
    response_model=JurisdictionOut,
    responses={
        202: {
            "model": PendingChangeOut,
            "description": "a change of status or key, waiting for another administrator",
        }
    },
)
async def update_jurisdiction(
    code: Annotated[str, Path(pattern=CODE)],
    data: JurisdictionUpdate,
    caller: AdminDep,
    sm: SessionmakerDep,
) -> JSONResponse:
    """Change name or note (200), or propose a change of status or of the recipient key that
    deliveries are sealed to (202): another administrator applies it by approving it."""
    async with transaction(sm) as session:
        done = await admin.update_jurisdiction(
            session, actor=caller.client_id, code=code, data=data
        )
    if done.pending is None:
        return JSONResponse(done.jurisdiction.model_dump(mode="json"))
    location = f"/v1/registry/pending-changes/{done.pending.id}"
    body = done.pending.model_dump(mode="json")
    return JSONResponse(body, status_code=202, headers={"Location": location})


@router.get("/platforms", response_model=Page[PlatformOut])
async def list_platforms(
    _caller: AdminDep,
    sm: SessionmakerDep,
    limit: Limit = MAX_PAGE,
    cursor: Annotated[str | None, Query(pattern=SLUG)] = None,
) -> Page[PlatformOut]:
    async with transaction(sm) as session:
        items, nxt = await admin.list_platforms(session, limit=limit, after=cursor)
    return Page[PlatformOut](items=items, next_cursor=nxt)


@router.get("/platforms/{slug}", response_model=PlatformOut)
async def get_platform(
    slug: Annotated[str, Path(pattern=SLUG)], _caller: AdminDep, sm: SessionmakerDep
) -> PlatformOut:
    async with transaction(sm) as session:
        return await admin.get_platform(session, slug=slug)


@router.post("/platforms", status_code=201, response_model=PlatformOut)
async def create_platform(
    data: PlatformCreate,
    request: Request,
    caller: AdminDep,
    sm: SessionmakerDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Register a platform; an existing slug is a 409, a retry with the same key replays."""

    async def create(session: AsyncSession) -> PlatformOut:
        return await admin.create_platform(session, actor=caller.client_id, data=data)

    status, body, replayed = await idempotency.create_once(
        sm,
        client_id=caller.client_id,
        key=idempotency_key,
        path=request.url.path,
        data=data,
        status=201,
        create=create,
    )
    return created_response(
        status, body, replayed=replayed, location=f"/v1/registry/platforms/{body['slug']}"
    )


@router.patch("/platforms/{slug}", response_model=PlatformOut)
async def update_platform(
    slug: Annotated[str, Path(pattern=SLUG)],
    data: PlatformUpdate,
    caller: AdminDep,
    sm: SessionmakerDep,
) -> PlatformOut:
    """Rename a platform, change the jurisdiction of its legal representative, or register
    (null: remove) the key it signs its disclosures with."""
    async with transaction(sm) as session:
        return await admin.update_platform(session, actor=caller.client_id, slug=slug, data=data)


@router.get("/webhooks/endpoints", response_model=list[EndpointOut])
async def list_webhook_endpoints(
    _caller: AdminDep, sm: SessionmakerDep, state: EndpointState | None = None
) -> list[EndpointOut]:
    """Every jurisdiction's webhook endpoints, e.g. those pending approval."""
    async with transaction(sm) as session:
        return await webhooks.list_all(session, state=state)


@router.post("/webhooks/endpoints/{endpoint_id}/approve", response_model=EndpointOut)
async def approve_webhook_endpoint(
    endpoint_id: uuid.UUID, request: Request, caller: AdminDep, sm: SessionmakerDep
) -> EndpointOut:
    """Let the hub call an endpoint: a new one, or one disabled after failures again."""
    prefix: str = request.app.state.settings.topic_prefix
    async with transaction(sm) as session:
        return await webhooks.approve(
            session, admin=caller.client_id, endpoint_id=endpoint_id, prefix=prefix
        )
