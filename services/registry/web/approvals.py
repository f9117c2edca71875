"""The second administrator's side of four eyes: the changes waiting, and approving one.

A change of a jurisdiction's status or public key proposed through the admin API applies only
when an administrator other than its proposer approves it here (`services.registry.approvals`).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.registry.approvals import service as approvals
from services.registry.approvals.service import PendingChangeOut
from services.registry.reference import service as admin
from services.registry.reference.service import JurisdictionOut
from services.registry.web.deps import AdminDep, SessionmakerDep
from shared.db import transaction
from shared.schemas import MAX_PAGE, Page

router = APIRouter(prefix="/v1/registry/pending-changes", tags=["admin"])
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"page size, at most {MAX_PAGE}")]


@router.get("", response_model=Page[PendingChangeOut])
async def list_pending_changes(
    _caller: AdminDep, sm: SessionmakerDep, limit: Limit = MAX_PAGE
) -> Page[PendingChangeOut]:
    """The changes waiting for a second administrator, oldest first."""
    async with transaction(sm) as session:
        items = await approvals.list_pending(session, limit=limit)
    return Page[PendingChangeOut](items=items)


@router.get("/{change_id}", response_model=PendingChangeOut)
async def get_pending_change(
    change_id: uuid.UUID, _caller: AdminDep, sm: SessionmakerDep
) -> PendingChangeOut:
    """A proposed change and its state (pending, approved, superseded): the `Location` of the
    202 that proposed it."""
    async with transaction(sm) as session:
        return await approvals.read(session, change_id=change_id)


@router.post("/{change_id}/approve", response_model=JurisdictionOut)
async def approve_change(
    change_id: uuid.UUID, caller: AdminDep, sm: SessionmakerDep
) -> JurisdictionOut:
    """Apply a pending change; its proposer cannot (403), nor can anyone twice (409)."""
    async with transaction(sm) as session:
        return await admin.approve_change(session, actor=caller.client_id, change_id=change_id)
