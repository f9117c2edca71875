"""The coordination desk's statistics: how much flows, how fast members acknowledge, what waits.

One query function per chart, all counting or timing metadata columns (states and timestamps);
no disclosed value, selector or ciphertext is read. The figures answer integrators' own
dashboards too, through `GET /v1/registry/statistics`.

Legal requests and release holds belong to domains that may not be in this registry yet: the
request series is read from whichever requests table the registry's metadata knows (and is
empty without one), and held deliveries are counted once `DeliveryState` has a `held` member.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, Float, Table, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry import tables
from services.registry.deliveries.models import Delivery
from services.registry.deliveries.rules import DeliveryState
from services.registry.oversight.schemas import (
    AcknowledgementLatency,
    DailyCount,
    DeadlineCompliance,
    StateCount,
    Statistics,
)
from services.registry.responses.models import CooperationResponse

MAX_DAYS = 366
REQUEST_TABLES = ("requests", "legal_requests")
# Deliveries waiting for their originator's release decision, once the release domain adds it.
HELD: DeliveryState | None = getattr(DeliveryState, "HELD", None)


def requests_table() -> Table | None:
    """The legal requests table if the registry records requests, with a `created_at` column."""
    for name in REQUEST_TABLES:
        table = tables.metadata.tables.get(name)
        if table is not None and "created_at" in table.c:
            return table
    return None


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
    requests: dict[date, int] = {}
    table = requests_table()
    if table is not None:
        made = _day(table.c.created_at).label("day")
        counted = select(made, func.count()).where(table.c.created_at >= since)
        if platform is not None and "platform" in table.c:
            counted = counted.where(table.c.platform == platform)
        requests = dict((await session.execute(counted.group_by(made))).tuples().all())
    return [
        DailyCount(day=d, responses=responses.get(d, 0), requests=requests.get(d, 0)) for d in days
    ], table is not None


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


def deadline_compliance() -> list[DeadlineCompliance]:
    """Requests answered within their deadline per platform and type.

    Empty until the requests domain records deadlines; its service fills this list then."""
    return []


async def statistics(
    session: AsyncSession,
    *,
    days: int = 30,
    platform: str | None = None,
    now: datetime | None = None,
) -> Statistics:
    """Everything the statistics page draws, for the last `days` days (UTC) up to `now`."""
    days = max(1, min(days, MAX_DAYS))
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    span = [first + timedelta(days=i) for i in range(days)]
    per_day, recorded = await _per_day(session, since=since, days=span, platform=platform)
    by_state = await deliveries_by_state(session, platform=platform)
    held = next((c.deliveries for c in by_state if HELD is not None and c.state == HELD), 0)
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
        deadline_compliance=deadline_compliance(),
        held_awaiting_release=held,
    )
