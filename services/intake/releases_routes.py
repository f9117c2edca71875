"""Intake's release API: the originator's pending decisions, its decisions, the case policy."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.intake.deps import CaseReaderDep, CaseWriterDep, ContextDep, SessionmakerDep
from services.registry.cases import service as cases
from services.registry.cases.schemas import CaseOut, ReleasePolicyUpdate
from services.registry.evidence.schemas import EvidenceBundle
from services.registry.releases import service as releases
from services.registry.releases.rules import ReleaseState
from services.registry.releases.schemas import ReleaseDecisionIn, ReleaseOut
from shared.db import transaction
from shared.schemas import MAX_PAGE, Page

router = APIRouter(prefix="/v1", tags=["releases"])
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"page size, at most {MAX_PAGE}")]


@router.get("/releases", response_model=Page[ReleaseOut])
async def list_releases(
    actor: CaseReaderDep,
    sm: SessionmakerDep,
    limit: Limit = 50,
    cursor: str | None = None,
    state: ReleaseState = ReleaseState.HELD,
) -> Page[ReleaseOut]:
    """Deliveries of responses to the caller's cases that wait for its decision (or, with
    `state`, the ones it already decided), oldest first."""
    async with transaction(sm) as session:
        items, nxt = await releases.list_for(
            session, originator=actor.jurisdiction, limit=limit, cursor=cursor, state=state
        )
    return Page[ReleaseOut](items=items, next_cursor=nxt)


@router.get("/releases/{release_id}", response_model=ReleaseOut)
async def get_release(
    release_id: uuid.UUID, actor: CaseReaderDep, sm: SessionmakerDep
) -> ReleaseOut:
    async with transaction(sm) as session:
        return await releases.read(session, release_id=release_id, originator=actor.jurisdiction)


@router.post("/releases/{release_id}", response_model=ReleaseOut)
async def decide_release(
    release_id: uuid.UUID,
    data: ReleaseDecisionIn,
    actor: CaseWriterDep,
    sm: SessionmakerDep,
    ctx: ContextDep,
) -> ReleaseOut:
    """Release a held delivery to its recipient, or withhold it (with the reason recorded).
    Only the originator may; for anyone else the release does not exist."""
    async with transaction(sm) as session:
        return await releases.decide(
            session,
            actor=actor,
            release_id=release_id,
            decision=data.decision,
            reason=data.reason,
            ctx=ctx,
        )


@router.get("/releases/{release_id}/evidence", response_model=EvidenceBundle)
async def get_release_evidence(
    release_id: uuid.UUID, actor: CaseReaderDep, sm: SessionmakerDep
) -> EvidenceBundle:
    """Signed evidence of the originator's decision (released, withheld, or lapsed), which
    verifies offline against `/.well-known/evidence-jwks.json`. Only the originator sees it."""
    async with transaction(sm) as session:
        return await releases.evidence_bundle(
            session, release_id=release_id, originator=actor.jurisdiction
        )


@router.put("/cases/{case_id}/release-policy", response_model=CaseOut, tags=["cases"])
async def set_release_policy(
    case_id: uuid.UUID, data: ReleasePolicyUpdate, actor: CaseWriterDep, sm: SessionmakerDep
) -> CaseOut:
    """Which held deliveries of responses to this case the hub releases without asking:
    `none`, `members` or `members_and_partners` (never third countries, never H1)."""
    async with transaction(sm) as session:
        return await cases.set_release_policy(
            session, actor=actor, case_id=case_id, policy=data.release_policy
        )
