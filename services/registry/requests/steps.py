"""The steps of a request's life after issue, one use case each, for the authority, the
platform and the enforcing state; `service` holds what they share.

Every step locks the request, lets `rules` refuse it (409, nothing changes), then records it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.context import Context
from services.registry.deliveries.rules import FanoutState
from services.registry.requests import journal, rules
from services.registry.requests import repository as repo
from services.registry.requests import service as svc
from services.registry.requests.models import LegalRequest
from services.registry.requests.rules import (
    Action,
    ObjectionDecision,
    RequestState,
    ReviewState,
    TimerKind,
)
from services.registry.requests.schemas import (
    Clarification,
    ClarificationRequest,
    Objection,
    PreservationConfirmation,
    Refusal,
    RequestOut,
    Withdrawal,
)
from shared import events
from shared.errors import Conflict, Forbidden


async def acknowledge(
    session: AsyncSession, *, request_id: uuid.UUID, viewer: svc.Viewer, ctx: Context, now: datetime
) -> RequestOut:
    """The platform confirms receipt."""
    svc.require_platform(viewer)
    req = await svc.load(session, request_id, viewer)
    to = journal.transition(req, Action.ACKNOWLEDGE)
    await journal.record(
        session, req, actor=viewer.client_id, action="acknowledged", to=to, now=now
    )
    journal.emit(session, req, events.RequestAcknowledged, ctx, now)
    return await svc.out(session, req, with_history=True)


async def request_clarification(
    session: AsyncSession,
    *,
    request_id: uuid.UUID,
    viewer: svc.Viewer,
    data: ClarificationRequest,
    ctx: Context,
    now: datetime,
) -> RequestOut:
    """The platform asks for clarification; the response clock stops until `clarify`."""
    svc.require_platform(viewer)
    req = await svc.load(session, request_id, viewer)
    to = journal.transition(req, Action.REQUEST_CLARIFICATION)
    req.paused_at = now
    details = {"ground": data.ground.value, "detail": data.detail}
    await journal.record(
        session,
        req,
        actor=viewer.client_id,
        action="clarification_requested",
        to=to,
        now=now,
        details=details,
    )
    journal.emit(session, req, events.ClarificationRequested, ctx, now, ground=data.ground.value)
    return await svc.out(session, req, with_history=True)


async def clarify(
    session: AsyncSession,
    *,
    request_id: uuid.UUID,
    viewer: svc.Viewer,
    data: Clarification,
    ctx: Context,
    now: datetime,
) -> RequestOut:
    """The authority answers; every unfired timer of the response clock moves by the pause."""
    req = await svc.load(session, request_id, viewer)
    svc.require_issuer(req, viewer)
    to = journal.transition(req, Action.CLARIFY)
    if req.paused_at is not None:
        req.paused_total = req.paused_total + max(now - req.paused_at, timedelta(0))
        req.paused_at = None
    response = journal.window(req, TimerKind.RESPONSE)
    if response is not None:
        req.deadline_at = response.deadline
        await repo.reschedule(session, req.id, response)
    await journal.record(
        session,
        req,
        actor=viewer.client_id,
        action="clarified",
        to=to,
        now=now,
        details={"detail": data.detail},
    )
    journal.emit(session, req, events.RequestClarified, ctx, now, deadline_at=req.deadline_at)
    return await svc.out(session, req, with_history=True)


async def refuse(
    session: AsyncSession,
    *,
    request_id: uuid.UUID,
    viewer: svc.Viewer,
    data: Refusal,
    ctx: Context,
    now: datetime,
) -> RequestOut:
    """The platform refuses on an enumerated ground, with its explanation."""
    svc.require_platform(viewer)
    req = await svc.load(session, request_id, viewer)
    to = journal.transition(req, Action.REFUSE)
    await repo.cancel_timers(session, req.id, journal.stop_clocks_kinds(req))
    await journal.record(
        session,
        req,
        actor=viewer.client_id,
        action="refused",
        to=to,
        now=now,
        details={"ground": data.ground.value, "detail": data.detail},
    )
    journal.emit(session, req, events.RequestRefused, ctx, now, ground=data.ground.value)
    return await svc.out(session, req, with_history=True)


async def confirm_preserved(
    session: AsyncSession,
    *,
    request_id: uuid.UUID,
    viewer: svc.Viewer,
    data: PreservationConfirmation,
    ctx: Context,
    now: datetime,
) -> RequestOut:
    """The platform confirms the preservation and until when it keeps the data."""
    svc.require_platform(viewer)
    req = await svc.load(session, request_id, viewer)
    to = journal.transition(req, Action.CONFIRM_PRESERVED)
    req.preserved_until = data.preserved_until
    await journal.record(
        session,
        req,
        actor=viewer.client_id,
        action="preservation_confirmed",
        to=to,
        now=now,
        details={"preserved_until": data.preserved_until.isoformat()},
    )
    journal.emit(
        session, req, events.PreservationConfirmed, ctx, now, preserved_until=data.preserved_until
    )
    return await svc.out(session, req, with_history=True)


async def withdraw(
    session: AsyncSession,
    *,
    request_id: uuid.UUID,
    viewer: svc.Viewer,
    data: Withdrawal,
    ctx: Context,
    now: datetime,
) -> RequestOut:
    """The issuing authority withdraws its order; every clock stops."""
    req = await svc.load(session, request_id, viewer)
    svc.require_issuer(req, viewer)
    to = journal.transition(req, Action.WITHDRAW)
    await repo.cancel_timers(session, req.id, list(TimerKind))
    await journal.record(
        session,
        req,
        actor=viewer.client_id,
        action="withdrawn",
        to=to,
        now=now,
        details={"reason": data.reason},
    )
    journal.emit(session, req, events.RequestWithdrawn, ctx, now)
    return await svc.out(session, req, with_history=True)


async def extend(
    session: AsyncSession, *, request_id: uuid.UUID, viewer: svc.Viewer, ctx: Context, now: datetime
) -> RequestOut:
    """Extend a preservation once, by 30 days."""
    req = await svc.load(session, request_id, viewer)
    svc.require_issuer(req, viewer)
    rules.check_extend(rules.RequestType(req.type), RequestState(req.state), req.extended)
    req.extended = True
    preservation = journal.window(req, TimerKind.PRESERVATION)
    assert preservation is not None
    req.deadline_at = preservation.deadline
    await repo.reschedule(session, req.id, preservation)
    await journal.record(
        session,
        req,
        actor=viewer.client_id,
        action="extended",
        to=RequestState(req.state),
        now=now,
        details={"deadline_at": req.deadline_at.isoformat()},
    )
    journal.emit(session, req, events.PreservationExtended, ctx, now, deadline_at=req.deadline_at)
    return await svc.out(session, req, with_history=True)


async def object_or_clear(
    session: AsyncSession,
    *,
    request_id: uuid.UUID,
    viewer: svc.Viewer,
    data: Objection,
    ctx: Context,
    now: datetime,
) -> RequestOut:
    """The enforcing state decides within its window: grounds for refusal, or none."""
    req = await svc.load(session, request_id, viewer)
    if viewer.jurisdiction != req.enforcing_jurisdiction:
        raise Forbidden("only the enforcing state can decide on grounds for refusal")
    if not rules.objection_open(
        ReviewState(req.review_state), journal.window(req, TimerKind.OBJECTION), now
    ):
        raise Conflict("the enforcing state's review of this request is over")
    if data.decision is ObjectionDecision.NO_GROUNDS:
        await journal.conclude_review(
            session, req, outcome=ReviewState.NO_GROUNDS, actor=viewer.client_id, ctx=ctx, now=now
        )
        return await svc.out(session, req, with_history=True)
    await object_to(
        session, req, actor=viewer.client_id, grounds=data.grounds or "", ctx=ctx, now=now
    )
    return await svc.out(session, req, with_history=True)


async def object_to(
    session: AsyncSession,
    req: LegalRequest,
    *,
    actor: str,
    grounds: str,
    ctx: Context,
    now: datetime,
) -> None:
    """Objection: held responses are never delivered and their plaintext is deleted."""
    req.review_state = ReviewState.OBJECTED.value
    held = await repo.held_responses(session, req.id)
    for resp in held:
        resp.fanout_state, resp.disclosures = FanoutState.OBJECTED.value, None
    state = RequestState(req.state)
    to = state if state in rules.TERMINAL else journal.transition(req, Action.OBJECT)
    await repo.cancel_timers(session, req.id, list(TimerKind))
    await journal.record(
        session,
        req,
        actor=actor,
        action="objected",
        to=to,
        now=now,
        details={"grounds": grounds, "withheld_responses": len(held)},
    )
    journal.emit(session, req, events.RequestObjected, ctx, now, withheld_responses=len(held))
