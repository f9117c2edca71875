"""The sender's view of a response: its status, its evidence, and its recall.

`GET /v1/responses/{id}` is where `POST /v1/responses` points its `Location`. Only the
submitting platform sees a response; recall is also open to the originator (the authority that
opened the requesting case). To everyone else a response does not exist: 404.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from services.intake.deps import (
    RECALLER_SECURITY,
    ContextDep,
    PlatformDep,
    RecallerDep,
    SessionmakerDep,
)
from services.registry.evidence import service as evidence
from services.registry.evidence.schemas import (
    EvidenceBundle,
    RecallCreate,
    RecallOut,
    ResponseStatus,
)
from shared.db import transaction

router = APIRouter(prefix="/v1/responses", tags=["responses"])


@router.get("/rejections/{submission_id}/evidence", response_model=EvidenceBundle)
async def get_rejection_evidence(
    submission_id: uuid.UUID, principal: PlatformDep, sm: SessionmakerDep
) -> EvidenceBundle:
    """Signed evidence that a submission was refused (the `evidence` member of its 422)."""
    assert principal.platform is not None
    async with transaction(sm) as session:
        return await evidence.rejection_bundle(
            session, submission_id=submission_id, platform=principal.platform
        )


@router.get("/{response_id}", response_model=ResponseStatus)
async def get_response(
    response_id: uuid.UUID, principal: PlatformDep, sm: SessionmakerDep
) -> ResponseStatus:
    """Status and per-recipient progress, for the submitting platform."""
    assert principal.platform is not None
    async with transaction(sm) as session:
        return await evidence.response_status(
            session, response_id=response_id, platform=principal.platform
        )


@router.get("/{response_id}/evidence", response_model=EvidenceBundle)
async def get_response_evidence(
    response_id: uuid.UUID, principal: PlatformDep, sm: SessionmakerDep
) -> EvidenceBundle:
    """Signed evidence of the response and of the recipients the platform may see named."""
    assert principal.platform is not None
    async with transaction(sm) as session:
        return await evidence.response_bundle(
            session, response_id=response_id, platform=principal.platform
        )


@router.post("/{response_id}/recall", response_model=RecallOut, openapi_extra=RECALLER_SECURITY)
async def recall_response(
    response_id: uuid.UUID,
    data: RecallCreate,
    who: RecallerDep,
    sm: SessionmakerDep,
    ctx: ContextDep,
) -> RecallOut:
    """Recall with a reason: unacknowledged deliveries are withdrawn, acknowledged ones must be
    deleted by their recipients. Recalling again answers with the first recall."""
    async with transaction(sm) as session:
        return await evidence.recall(
            session, response_id=response_id, who=who, reason=data.reason, ctx=ctx
        )
