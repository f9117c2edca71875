"""A response that answers a request: the checks that keep it within the order, and what
answering does to the request (answered; a preservation it follows ends; held for review).

Called by `responses.service.submit` in the same transaction, so a response that fails here
is not stored at all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.context import Context
from services.registry.deliveries.rules import FanoutState
from services.registry.requests import journal, rules
from services.registry.requests import repository as repo
from services.registry.requests.models import LegalRequest
from services.registry.requests.rules import Action, DataCategory, RequestState, TimerKind
from shared import events
from shared.errors import ValidationFailed

# what a disclosure's category may answer: IP data to identify a user is subscriber-like
_ANSWERS = {
    "subscriber": {DataCategory.SUBSCRIBER, DataCategory.IDENTIFICATION},
    "traffic": {DataCategory.TRAFFIC},
    "content": {DataCategory.CONTENT},
}


@dataclass(frozen=True)
class Answer:
    """What the response row takes from the request it answers."""

    case_id: uuid.UUID
    fanout_state: FanoutState


async def check(
    session: AsyncSession,
    *,
    request_id: uuid.UUID,
    platform: str,
    requesting_case_id: uuid.UUID | None,
    selector_hashes: set[str],
    categories: set[str],
    now: datetime,
) -> tuple[LegalRequest, Answer]:
    """Refuse (422) a response that is not the addressee's or goes beyond the order."""
    req = await repo.get_for_update(session, request_id)
    if req is None or req.platform != platform:
        raise ValidationFailed("request_id names no request addressed to this platform")
    journal.transition(req, Action.ANSWER)  # 409 if it cannot be answered now
    if requesting_case_id is not None and requesting_case_id != req.case_id:
        raise ValidationFailed("requesting_case_id must be the case of the request answered")
    if not selector_hashes <= set(req.selector_hashes):
        raise ValidationFailed("the response names selectors beyond the request's")
    asked = {DataCategory(c) for c in req.categories}
    if any(not (_ANSWERS[c] & asked) for c in categories):
        raise ValidationFailed("the response discloses data categories beyond the request's")
    held = rules.objection_open(
        rules.ReviewState(req.review_state), journal.window(req, TimerKind.OBJECTION), now
    )
    state = FanoutState.HELD_FOR_REVIEW if held else FanoutState.RECEIVED
    return req, Answer(case_id=req.case_id, fanout_state=state)


async def answered(
    session: AsyncSession,
    req: LegalRequest,
    *,
    response_id: uuid.UUID,
    actor: str,
    ctx: Context,
    now: datetime,
) -> None:
    """The request is answered; a preservation it follows ends with it."""
    to = journal.transition(req, Action.ANSWER)
    await repo.cancel_timers(session, req.id, journal.stop_clocks_kinds(req))
    await journal.record(
        session,
        req,
        actor=actor,
        action="answered",
        to=to,
        now=now,
        details={"response_id": str(response_id)},
    )
    journal.emit(session, req, events.RequestAnswered, ctx, now, response_id=response_id)
    if req.follows_request_id is None:
        return
    prior = await repo.get_for_update(session, req.follows_request_id)
    if prior is None or RequestState(prior.state) in rules.TERMINAL:
        return
    ended = journal.transition(prior, Action.END)
    await repo.cancel_timers(session, prior.id, journal.stop_clocks_kinds(prior))
    await journal.record(
        session,
        prior,
        actor=actor,
        action="ended",
        to=ended,
        now=now,
        details={"production_request_id": str(req.id)},
    )
    journal.emit(session, prior, events.PreservationEnded, ctx, now, production_request_id=req.id)
