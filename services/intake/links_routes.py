"""Intake's link API: hits between cases of different jurisdictions, and consent to exchange
references."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from services.intake.deps import CaseReaderDep, CaseWriterDep, ContextDep, SessionmakerDep
from services.registry.cases import links
from services.registry.cases.links import LinkOut
from shared.db import transaction

router = APIRouter(prefix="/v1", tags=["links"])


@router.get("/links", response_model=list[LinkOut])
async def list_links(actor: CaseReaderDep, sm: SessionmakerDep) -> list[LinkOut]:
    """The caller's links, newest first; the other side's reference once both consented."""
    async with transaction(sm) as session:
        return await links.list_for(session, jurisdiction=actor.jurisdiction)


@router.post("/links/{link_id}/consent", response_model=LinkOut)
async def consent_to_link(
    link_id: uuid.UUID, actor: CaseWriterDep, sm: SessionmakerDep, ctx: ContextDep
) -> LinkOut:
    """Consent to exchange references over this link; idempotent."""
    async with transaction(sm) as session:
        return await links.consent(session, actor=actor, link_id=link_id, ctx=ctx)
