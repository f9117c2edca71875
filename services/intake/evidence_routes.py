"""Evidence for recipients, the hub's evidence keys, and confirming a recalled delivery's
deletion.

`/.well-known/evidence-jwks.json` publishes every hub signing key ever used (retired ones
too), so a bundle saved years ago still verifies; it needs no token.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from services.intake.deps import ContextDep, InboxReaderDep, SessionmakerDep
from services.registry.evidence import keys
from services.registry.evidence import service as evidence
from services.registry.evidence.schemas import DeletionConfirmation, EvidenceBundle
from shared.db import transaction

router = APIRouter()
JWKS_PATH = "/.well-known/evidence-jwks.json"


@router.get(JWKS_PATH, tags=["evidence"])
async def evidence_jwks(sm: SessionmakerDep) -> dict[str, Any]:
    """The hub's evidence and delivery signing keys, current first."""
    async with transaction(sm) as session:
        return await keys.jwks(session)


@router.get("/v1/inbox/{delivery_id}/evidence", response_model=EvidenceBundle, tags=["inbox"])
async def get_delivery_evidence(
    delivery_id: uuid.UUID, actor: InboxReaderDep, sm: SessionmakerDep
) -> EvidenceBundle:
    """Signed evidence of one of the caller's deliveries: relayed, retrieved, recalled..."""
    async with transaction(sm) as session:
        return await evidence.delivery_bundle(
            session, delivery_id=delivery_id, jurisdiction=actor.jurisdiction
        )


@router.post(
    "/v1/inbox/{delivery_id}/deletion-confirmation",
    response_model=DeletionConfirmation,
    tags=["inbox"],
)
async def confirm_deletion(
    delivery_id: uuid.UUID, actor: InboxReaderDep, sm: SessionmakerDep, ctx: ContextDep
) -> DeletionConfirmation:
    """Confirm that a recalled, acknowledged delivery was deleted; recorded with evidence."""
    async with transaction(sm) as session:
        return await evidence.confirm_deletion(
            session, actor=actor, delivery_id=delivery_id, ctx=ctx
        )
