"""The coordination desk's statistics: how much flows, how fast members acknowledge, what waits.

One query function per chart, all counting or timing metadata columns (states and timestamps);
no disclosed value, selector or ciphertext is read. The figures answer integrators' own
dashboards too, through `GET /v1/registry/statistics`.

Deadline compliance reads the legal requests' current deadline (kept current across
clarification pauses by the requests domain) and the time their history says they were
answered: a platform is measured against the clock the Regulation gives it, not a guess.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, Float, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.deliveries.models import Delivery
from services.registry.deliveries.rules import DeliveryState
from services.registry.oversight.schemas import (
    AcknowledgementLatency,
    DailyCount,
    DeadlineCompliance,
    StateCount,
    Statistics,
)
from services.registry.requests.models import LegalRequest, RequestHistory
from services.registry.requests.rules import CLOCK_RUNNING, RESPONSE_WINDOW, RequestState
from services.registry.responses.models import CooperationResponse

MAX_DAYS = 366
# only productions have an answer deadline (a preservation lapses; it is never "late")
ANSWER_DEADLINE_TYPES = tuple(t.value for t in RESPONSE_WINDOW)


def _day(column: Any) -> Any:
    return cast(func.timezone("UTC", column), Date)


async def _per_day(
    session: AsyncSession, *, since: datetime, days: list[date], platform: str | None
) -> tuple[list[DailyCount], bool]:
    day = _day(CooperationResponse.received_at).label("day")
    query = select(day, func.count()).where(CooperationResponse.received_at >= since)
    if platform is not None:
        query = query.where(CooperationResponse.platform == platform)
    responses = dict((await session.execute(query.group_by(day))).tuples().all())
    made = _day(LegalRequest.created_at).label("day")
    counted = select(made, func.count()).where(LegalRequest.created_at >= since)
    if platform is not None:
        counted = counted.where(LegalRequest.platform == platform)
    requests = dict((await session.execute(counted.group_by(made))).tuples().all())
    return [
        DailyCount(day=d, responses=responses.get(d, 0), requests=requests.get(d, 0)) for d in days
    ], True


async def acknowledgement_latency(
    session: AsyncSession, *, since: datetime, platform: str | None = None
) -> list[AcknowledgementLatency]:
    """p50 and p95 of publication-to-acknowledgement per jurisdiction, over the window."""
    seconds = func.extract("epoch", Delivery.acknowledged_at - Delivery.published_at)
    query = (
        select(
            Delivery.jurisdiction,
            func.count(),
            cast(func.percentile_cont(0.5).within_group(seconds), Float),
            cast(func.percentile_cont(0.95).within_group(seconds), Float),
        )
        .where(
            Delivery.acknowledged_at.is_not(None),
            Delivery.published_at.is_not(None),
            Delivery.acknowledged_at >= since,
        )
        .group_by(Delivery.jurisdiction)
        .order_by(Delivery.jurisdiction)
    )
    if platform is not None:
        query = query.join(CooperationResponse, CooperationResponse.id == Delivery.response_id)
        query = query.where(CooperationResponse.platform == platform)
    rows = (await session.execute(query)).tuples().all()
    return [
        AcknowledgementLatency(
            jurisdiction=j, acknowledged=n, p50_seconds=round(p50, 3), p95_seconds=round(p95, 3)
        )
        for j, n, p50, p95 in rows
    ]


async def deliveries_by_state(
    session: AsyncSession, *, platform: str | None = None
) -> list[StateCount]:
    """Every delivery's current state, counted; states with none are listed as 0."""
    query = select(Delivery.state, func.count()).group_by(Delivery.state)
    if platform is not None:
        query = query.join(CooperationResponse, CooperationResponse.id == Delivery.response_id)
        query = query.where(CooperationResponse.platform == platform)
    counts = dict((await session.execute(query)).tuples().all())
    return [StateCount(state=s, deliveries=counts.get(s.value, 0)) for s in DeliveryState]


async def deadline_compliance(
    session: AsyncSession, *, since: datetime, now: datetime, platform: str | None = None
) -> list[DeadlineCompliance]:
    """Production orders per platform and type: answered within their deadline or after it
    (answers given in the window), and those still unanswered past it now (a paused clock,
    awaiting clarification, is not overdue). Types and platforms with nothing are left out."""
    answers = (
        select(RequestHistory.request_id, func.min(RequestHistory.at).label("at"))
        .where(RequestHistory.to_state == RequestState.ANSWERED)
        .group_by(RequestHistory.request_id)
        .subquery()
    )
    answered_in_window = answers.c.at >= since
    on_time = func.count().filter(answered_in_window, answers.c.at <= LegalRequest.deadline_at)
    late = func.count().filter(answered_in_window, answers.c.at > LegalRequest.deadline_at)
    overdue = func.count().filter(
        LegalRequest.state.in_(list(CLOCK_RUNNING)), LegalRequest.deadline_at < now
    )
    query = (
        select(LegalRequest.platform, LegalRequest.type, on_time, late, overdue)
        .outerjoin(answers, answers.c.request_id == LegalRequest.id)
        .where(LegalRequest.type.in_(ANSWER_DEADLINE_TYPES))
        .group_by(LegalRequest.platform, LegalRequest.type)
        .order_by(LegalRequest.platform, LegalRequest.type)
    )
    if platform is not None:
        query = query.where(LegalRequest.platform == platform)
    return [
        DeadlineCompliance(platform=p, request_type=t, on_time=ok, late=after, open_overdue=waiting)
        for p, t, ok, after, waiting in (await session.execute(query)).tuples()
        if ok or after or waiting
    ]


async def statistics(
    session: AsyncSession,
    *,
    days: int = 30,
    platform: str | None = None,
    now: datetime | None = None,
) -> Statistics:
    """Everything the statistics page draws, for the last `days` days (UTC) up to `now`."""
    days = max(1, min(days, MAX_DAYS))
    now = (now or datetime.now(UTC)).astimezone(UTC)
    today = now.date()
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    span = [first + timedelta(days=i) for i in range(days)]
    per_day, recorded = await _per_day(session, since=since, days=span, platform=platform)
    by_state = await deliveries_by_state(session, platform=platform)
    held = next(c.deliveries for c in by_state if c.state == DeliveryState.HELD)
    return Statistics(
        days=days,
        since=since,
        platform=platform,
        per_day=per_day,
        requests_recorded=recorded,
        acknowledgement_latency=await acknowledgement_latency(
            session, since=since, platform=platform
        ),
        deliveries_by_state=by_state,
        deadline_compliance=await deadline_compliance(
            session, since=since, now=now, platform=platform
        ),
        held_awaiting_release=held,
    )
