"""The hub's evidence keys on the registry too: `GET /.well-known/evidence-jwks.json`.

Public and unauthenticated, like any JWKS: whoever holds a bundle must be able to check it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.registry.evidence import keys
from services.registry.web.deps import SessionmakerDep
from shared.db import transaction

router = APIRouter()


@router.get("/.well-known/evidence-jwks.json", tags=["evidence"])
async def evidence_jwks(sm: SessionmakerDep) -> dict[str, Any]:
    """Every hub evidence and delivery signing key, current first; retired keys stay."""
    async with transaction(sm) as session:
        return await keys.jwks(session)
