"""SQL of legal requests: who may see which, listings, history, and the durable timers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.context import keyset_page
from services.registry.deliveries.rules import FanoutState
from services.registry.requests.models import LegalRequest, RequestHistory, RequestTimer
from services.registry.requests.rules import (
    TERMINAL,
    RequestState,
    ReviewState,
    TimerKind,
    TimerPoint,
    Window,
)
from services.registry.responses.models import CooperationResponse


def authority_sees(jurisdiction: str) -> ColumnElement[bool]:
    """An authority sees its own requests and those it must review as enforcing state."""
    return or_(
        LegalRequest.issued_by == jurisdiction,
        and_(
            LegalRequest.enforcing_jurisdiction == jurisdiction,
            LegalRequest.review_state != ReviewState.NOT_REQUIRED.value,
        ),
    )


async def get_for_update(session: AsyncSession, request_id: uuid.UUID) -> LegalRequest | None:
    """The request, locked: every change to one request is serialised on its row."""
    query = select(LegalRequest).where(LegalRequest.id == request_id).with_for_update()
    found: LegalRequest | None = await session.scalar(query)
    return found


async def listing(
    session: AsyncSession,
    *,
    visible: ColumnElement[bool],
    limit: int,
    cursor: str | None,
    state: RequestState | None = None,
    case_id: uuid.UUID | None = None,
) -> tuple[Sequence[LegalRequest], bool]:
    """Newest first, keyset-paginated; the flag says whether another page follows."""
    query = select(LegalRequest).where(visible)
    if state is not None:
        query = query.where(LegalRequest.state == state.value)
    if case_id is not None:
        query = query.where(LegalRequest.case_id == case_id)
    query = keyset_page(
        query,
        LegalRequest.created_at,
        LegalRequest.id,
        cursor=cursor,
        limit=limit,
        newest_first=True,
    )
    rows = (await session.scalars(query)).all()
    return rows[:limit], len(rows) > limit


async def history(session: AsyncSession, request_id: uuid.UUID) -> Sequence[RequestHistory]:
    query = select(RequestHistory).where(RequestHistory.request_id == request_id)
    return (await session.scalars(query.order_by(RequestHistory.id))).all()


async def open_by_deadline(session: AsyncSession, limit: int) -> Sequence[LegalRequest]:
    """Open requests, the nearest deadline first (the coordinator's board)."""
    query = (
        select(LegalRequest)
        .where(LegalRequest.state.not_in([s.value for s in TERMINAL]))
        .order_by(LegalRequest.deadline_at, LegalRequest.id)
        .limit(limit)
    )
    return (await session.scalars(query)).all()


def add_timers(session: AsyncSession, request_id: uuid.UUID, window: Window) -> None:
    for point in TimerPoint:
        session.add(
            RequestTimer(
                request_id=request_id,
                kind=window.kind.value,
                point=point.value,
                fire_at=window.due(point),
            )
        )


async def reschedule(session: AsyncSession, request_id: uuid.UUID, window: Window) -> None:
    """Move the unfired timers of `window` to their new due times (a pause or an extension)."""
    for point in TimerPoint:
        await session.execute(
            update(RequestTimer)
            .where(
                RequestTimer.request_id == request_id,
                RequestTimer.kind == window.kind.value,
                RequestTimer.point == point.value,
                RequestTimer.fired_at.is_(None),
            )
            .values(fire_at=window.due(point))
        )


async def cancel_timers(
    session: AsyncSession, request_id: uuid.UUID, kinds: Sequence[TimerKind]
) -> None:
    """Drop the unfired timers of windows that no longer run."""
    await session.execute(
        delete(RequestTimer).where(
            RequestTimer.request_id == request_id,
            RequestTimer.kind.in_([k.value for k in kinds]),
            RequestTimer.fired_at.is_(None),
        )
    )


async def due_timer_ids(
    session: AsyncSession, now: datetime, limit: int
) -> list[tuple[int, uuid.UUID]]:
    """Candidate timers due now, without locks (each is claimed later, request first)."""
    query = (
        select(RequestTimer.id, RequestTimer.request_id)
        .join(LegalRequest, LegalRequest.id == RequestTimer.request_id)
        .where(
            RequestTimer.fired_at.is_(None),
            RequestTimer.fire_at <= now,
            # a clarification stops the response clock: its timers wait for the answer
            or_(LegalRequest.paused_at.is_(None), RequestTimer.kind != TimerKind.RESPONSE.value),
        )
        .order_by(RequestTimer.fire_at, RequestTimer.id)
        .limit(limit)
    )
    return [(row.id, row.request_id) for row in (await session.execute(query)).all()]


async def claim_timer(session: AsyncSession, timer_id: int, now: datetime) -> RequestTimer | None:
    """Mark one timer fired if it still is due and unfired; None if another instance won."""
    return await session.scalar(
        update(RequestTimer)
        .where(
            RequestTimer.id == timer_id,
            RequestTimer.fired_at.is_(None),
            RequestTimer.fire_at <= now,
        )
        .values(fired_at=now)
        .returning(RequestTimer)
    )


async def held_responses(
    session: AsyncSession, request_id: uuid.UUID
) -> Sequence[CooperationResponse]:
    query = select(CooperationResponse).where(
        CooperationResponse.request_id == request_id,
        CooperationResponse.fanout_state == FanoutState.HELD_FOR_REVIEW.value,
    )
    return (await session.scalars(query.with_for_update())).all()
