"""Firing the legal clocks: each due timer once, with its consequences and events, in one
transaction.

Exactly once across restarts and instances: a timer is claimed by `UPDATE ... SET fired_at WHERE
fired_at IS NULL` in the same transaction as the events it causes, under the request's row
lock (taken first, as every other step of a request does, so the two never deadlock). A crash
before commit leaves the timer unfired; a second instance finds it fired.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.context import Context
from services.registry.requests import journal
from services.registry.requests import repository as repo
from services.registry.requests.models import LegalRequest
from services.registry.requests.rules import (
    TERMINAL,
    Action,
    Clock,
    RequestState,
    RequestType,
    ReviewState,
    TimerKind,
    TimerPoint,
    clock_label,
)
from shared import events
from shared.db import transaction

SCHEDULER = "caseshare-scheduler"


@dataclass(frozen=True)
class Fired:
    """One timer that fired: which window, which point, and whether it was a breach.

    `label` names the clock for metrics: the request type for the answer's window
    (`production`, `emergency_production`), else the window (`preservation`, `objection`)."""

    request_id: uuid.UUID
    kind: TimerKind
    point: TimerPoint
    breached: bool
    label: str


async def fire_due(
    sm: async_sessionmaker[AsyncSession], *, clock: Clock, ctx: Context, limit: int = 100
) -> list[Fired]:
    """Fire every timer due at `clock()`, one transaction each; returns what this call fired."""
    now = clock()
    async with transaction(sm) as session:
        due = await repo.due_timer_ids(session, now, limit)
    fired = []
    for timer_id, request_id in due:
        async with transaction(sm) as session:
            outcome = await fire_one(session, timer_id, request_id, ctx=ctx, now=now)
        if outcome is not None:
            fired.append(outcome)
    return fired


async def fire_one(
    session: AsyncSession, timer_id: int, request_id: uuid.UUID, *, ctx: Context, now: datetime
) -> Fired | None:
    req = await repo.get_for_update(session, request_id)
    if req is None:
        return None
    timer = await repo.claim_timer(session, timer_id, now)
    if timer is None:
        return None  # another instance fired it, or a pause moved it
    kind, point = TimerKind(timer.kind), TimerPoint(timer.point)
    label = clock_label(kind, RequestType(req.type))
    window = journal.window(req, kind)
    deadline = window.deadline if window else now
    if point is not TimerPoint.EXPIRY:
        journal.emit(
            session,
            req,
            events.DeadlineReminderDue,
            ctx,
            now,
            kind=kind.value,
            point=point.value,
            deadline_at=deadline,
        )
        return Fired(req.id, kind, point, breached=False, label=label)
    breached = await _expire(session, req, kind, deadline, ctx=ctx, now=now)
    return Fired(req.id, kind, point, breached=breached, label=label)


async def _expire(
    session: AsyncSession,
    req: LegalRequest,
    kind: TimerKind,
    deadline: datetime,
    *,
    ctx: Context,
    now: datetime,
) -> bool:
    """A window ran out: a breach for the answer, a lapse for a preservation, and the end of
    the enforcing state's review (held responses go to fan-out)."""
    if kind is TimerKind.OBJECTION:
        if ReviewState(req.review_state) is ReviewState.PENDING:
            await journal.conclude_review(
                session, req, outcome=ReviewState.WINDOW_CLOSED, actor=SCHEDULER, ctx=ctx, now=now
            )
        return False
    if RequestState(req.state) in TERMINAL:
        return False
    if kind is TimerKind.PRESERVATION:
        to = journal.transition(req, Action.LAPSE)
        await repo.cancel_timers(session, req.id, journal.stop_clocks_kinds(req))
        await journal.record(session, req, actor=SCHEDULER, action="lapsed", to=to, now=now)
        journal.emit(session, req, events.RequestLapsed, ctx, now)
        return False
    await journal.record(
        session,
        req,
        actor=SCHEDULER,
        action="deadline_breached",
        to=RequestState(req.state),
        now=now,
        details={"kind": kind.value},
    )
    journal.emit(
        session, req, events.DeadlineBreached, ctx, now, kind=kind.value, deadline_at=deadline
    )
    return True
