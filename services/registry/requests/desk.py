"""The coordination desk's read models of requests: the deadline board and one request's
history, metadata only (no selectors, no free texts of the parties)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.requests import repository as repo
from services.registry.requests.models import LegalRequest
from services.registry.requests.rules import DataCategory, RequestState, RequestType, ReviewState
from services.registry.requests.schemas import DeskRequest, DeskStep
from shared.errors import NotFound


def _row(req: LegalRequest) -> DeskRequest:
    return DeskRequest(
        id=req.id,
        case_id=req.case_id,
        type=RequestType(req.type),
        state=RequestState(req.state),
        review_state=ReviewState(req.review_state),
        platform=req.platform,
        issued_by=req.issued_by,
        enforcing_jurisdiction=req.enforcing_jurisdiction,
        categories=[DataCategory(c) for c in req.categories],
        paused=req.paused_at is not None,
        deadline_at=req.deadline_at,
        objection_deadline_at=req.objection_deadline_at,
        created_at=req.created_at,
    )


async def board(session: AsyncSession, *, limit: int) -> list[DeskRequest]:
    """Open requests, the nearest deadline first."""
    return [_row(r) for r in await repo.open_by_deadline(session, limit)]


async def read(
    session: AsyncSession, *, request_id: uuid.UUID
) -> tuple[DeskRequest, list[DeskStep]]:
    """One request and its steps, for the desk."""
    req = await session.get(LegalRequest, request_id)
    if req is None:
        raise NotFound("no such request")
    steps = [
        DeskStep(
            at=h.at,
            actor=h.actor,
            action=h.action,
            from_state=RequestState(h.from_state) if h.from_state else None,
            to_state=RequestState(h.to_state),
        )
        for h in await repo.history(session, req.id)
    ]
    return _row(req), steps
