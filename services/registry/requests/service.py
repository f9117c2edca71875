"""Use cases of legal requests: issue, read, list, and every step of their life.

Each step locks the request's row, asks `rules` whether it may happen, then writes the new
state, a history row, an audit entry, its outbox events (on `requests` and the platform's own
topic) and the timers it starts or moves, all in the caller's transaction.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.audit import service as audit
from services.registry.cases import selectors
from services.registry.cases.models import Case, CaseSelector
from services.registry.cases.rules import CaseStatus
from services.registry.cases.schemas import SelectorIn
from services.registry.context import Actor, Context, encode_cursor
from services.registry.deliveries.rules import FanoutState
from services.registry.reference.models import Platform
from services.registry.requests import repository as repo
from services.registry.requests import rules
from services.registry.requests.models import LegalRequest, RequestHistory
from services.registry.requests.rules import (
    Action,
    RequestState,
    RequestType,
    ReviewState,
    TimerKind,
)
from services.registry.requests.schemas import HistoryOut, RequestCreate, RequestOut
from services.registry.store import outbox
from shared import events
from shared.errors import Forbidden, NotFound, ValidationFailed

FREE_TEXT = frozenset({"detail", "grounds", "reason"})


@dataclass(frozen=True)
class Viewer:
    """Who looks at a request: an authority (its jurisdiction) or a platform (its slug)."""

    client_id: str
    jurisdiction: str | None = None
    platform: str | None = None

    @classmethod
    def of(cls, actor: Actor) -> Viewer:
        return cls(client_id=actor.client_id, jurisdiction=actor.jurisdiction)


def _visible(req: LegalRequest, viewer: Viewer) -> bool:
    if viewer.platform is not None:
        return req.platform == viewer.platform
    return req.issued_by == viewer.jurisdiction or (
        req.enforcing_jurisdiction == viewer.jurisdiction
        and req.review_state != ReviewState.NOT_REQUIRED
    )


async def _load(session: AsyncSession, request_id: uuid.UUID, viewer: Viewer) -> LegalRequest:
    req = await repo.get_for_update(session, request_id)
    if req is None or not _visible(req, viewer):
        raise NotFound("no such request")
    return req


def _hashed(ctx: Context, sels: list[SelectorIn]) -> tuple[list[str], list[dict[str, str]]]:
    hashes, masked = [], []
    for index, sel in enumerate(sels):
        try:
            norm = selectors.normalise(sel.kind, sel.value)
        except selectors.InvalidSelector as exc:
            raise ValidationFailed(f"selectors[{index}]: {exc}") from exc
        hashes.append(selectors.selector_hash(ctx.hmac_key, sel.kind, norm))
        masked.append({"kind": sel.kind.value, "masked": selectors.mask(sel.kind, norm)})
    return hashes, masked


def windows_of(req: LegalRequest) -> list[rules.Window]:
    return rules.windows(
        kind=RequestType(req.type),
        received_at=req.received_at,
        paused=req.paused_total,
        extended=req.extended,
        review=ReviewState(req.review_state),
    )


def window(req: LegalRequest, kind: TimerKind) -> rules.Window | None:
    return next((w for w in windows_of(req) if w.kind is kind), None)


def _common(req: LegalRequest, now: datetime) -> dict[str, Any]:
    return {
        "request_id": req.id,
        "case_id": req.case_id,
        "request_type": req.type,
        "platform": req.platform,
        "issued_by": req.issued_by,
        "enforcing_jurisdiction": req.enforcing_jurisdiction,
        "state": req.state,
        "changed_at": now,
    }


def emit(
    session: AsyncSession,
    req: LegalRequest,
    event_type: type[events.RequestChanged],
    ctx: Context,
    now: datetime,
    **fields: Any,
) -> None:
    """Queue a lifecycle event on `requests`, the platform's topic and, for what the issuer
    must act on, its inbox; the records' ids derive from one, so a consumer of several can
    tell they are the same step."""
    if "jurisdiction" in event_type.model_fields:
        fields.setdefault("jurisdiction", req.issued_by)
    event = event_type(**_common(req, now), **fields)
    step = uuid.uuid4()
    for family in event.channels():
        outbox.add(
            session,
            event,
            key=str(req.id),
            subject=str(req.id),
            prefix=ctx.topic_prefix,
            family=family,
            platform=req.platform if family == "platform" else None,
            jurisdiction=req.issued_by if family == "inbox" else None,
            event_id=uuid.uuid5(step, family),
        )


async def record(
    session: AsyncSession,
    req: LegalRequest,
    *,
    actor: str,
    action: str,
    to: RequestState,
    now: datetime,
    details: dict[str, Any] | None = None,
    first: bool = False,
) -> None:
    """Move the request to `to` and leave the step in its history and in the audit chain
    (`first`: the request is new and comes from no state)."""
    before = None if first else req.state
    req.state, req.updated_at, req.version = to.value, now, req.version + 1
    session.add(
        RequestHistory(
            request_id=req.id,
            at=now,
            actor=actor,
            action=action,
            from_state=before,
            to_state=to.value,
            details=details or {},
        )
    )
    # the parties' free texts stay in the request's own history, never in the audit chain
    facts = {k: v for k, v in (details or {}).items() if k not in FREE_TEXT}
    await audit.append(
        session,
        actor=actor,
        action=f"request.{action}",
        subject_type="request",
        subject_id=str(req.id),
        details={"from": before, "to": to.value, **facts},
    )


async def _check_case(
    session: AsyncSession, actor: Actor, data: RequestCreate, hashes: list[str]
) -> Case:
    case = await session.get(Case, data.case_id)
    if case is None or case.opened_by != actor.jurisdiction:
        raise NotFound("no such case")
    if case.status != CaseStatus.OPEN:
        raise ValidationFailed("requests are issued on open cases only")
    if case.platform != data.platform:
        raise ValidationFailed("the addressee must be the case's platform")
    known = set(
        (
            await session.scalars(
                select(CaseSelector.value_hash).where(CaseSelector.case_id == case.id)
            )
        ).all()
    )
    if not set(hashes) <= known:
        raise ValidationFailed("the selectors must be among the case's selectors")
    return case


async def _check_follows(
    session: AsyncSession, actor: Actor, data: RequestCreate
) -> LegalRequest | None:
    if data.follows_request_id is None:
        return None
    if data.type is RequestType.PRESERVATION:
        raise ValidationFailed("only a production order can follow a preservation")
    prior = await repo.get_for_update(session, data.follows_request_id)
    if (
        prior is None
        or prior.issued_by != actor.jurisdiction
        or prior.case_id != data.case_id
        or prior.type != RequestType.PRESERVATION
        or RequestState(prior.state) in rules.TERMINAL
    ):
        raise ValidationFailed("follows_request_id must name an open preservation of this case")
    return prior


async def issue(
    session: AsyncSession, *, actor: Actor, data: RequestCreate, ctx: Context, now: datetime
) -> RequestOut:
    """Issue an order; the enforcing state is the platform's legal representative's."""
    categories = set(data.categories)
    rules.check_issue(categories=categories, validated_by=data.validated_by)
    hashes, masked = _hashed(ctx, data.selectors)
    await _check_case(session, actor, data, hashes)
    await _check_follows(session, actor, data)
    platform = await session.get(Platform, data.platform)
    assert platform is not None  # the case's platform exists (foreign key)
    enforcing = platform.legal_rep_jurisdiction
    review = rules.needs_enforcing_review(categories, actor.jurisdiction, enforcing)
    req = LegalRequest(
        id=uuid.uuid4(),
        case_id=data.case_id,
        issued_by=actor.jurisdiction,
        issued_by_client=actor.client_id,
        platform=data.platform,
        enforcing_jurisdiction=enforcing,
        type=data.type.value,
        state=(RequestState.AWAITING_ENFORCING_REVIEW if review else RequestState.ISSUED).value,
        review_state=(ReviewState.PENDING if review else ReviewState.NOT_REQUIRED).value,
        categories=[c.value for c in data.categories],
        selector_hashes=hashes,
        selectors=[s.model_dump(mode="json") for s in data.selectors],
        selectors_masked=masked,
        time_from=data.time_from,
        time_to=data.time_to,
        legal_basis=data.legal_basis,
        issuing_authority=data.issuing_authority,
        validated_by=data.validated_by,
        follows_request_id=data.follows_request_id,
        extended=False,
        paused_total=timedelta(0),
        received_at=now,
        version=0,
        created_at=now,
    )
    wins = windows_of(req)
    req.deadline_at = wins[0].deadline
    objection = window(req, TimerKind.OBJECTION)
    req.objection_deadline_at = objection.deadline if objection else None
    session.add(req)
    await session.flush()
    for w in wins:
        repo.add_timers(session, req.id, w)
    await record(
        session,
        req,
        actor=actor.client_id,
        action="issued",
        to=RequestState(req.state),
        now=now,
        first=True,
        details={"type": req.type, "platform": req.platform, "enforcing": enforcing},
    )
    emit(
        session,
        req,
        events.RequestIssued,
        ctx,
        now,
        categories=req.categories,
        deadline_at=req.deadline_at,
        follows_request_id=req.follows_request_id,
    )
    if objection is not None:
        notice = events.RequestReviewNotified(
            request_id=req.id,
            jurisdiction=enforcing,
            request_type=req.type,
            platform=req.platform,
            issued_by=req.issued_by,
            categories=req.categories,
            validated_by=data.validated_by or "",
            objection_deadline_at=objection.deadline,
            notified_at=now,
        )
        outbox.add(
            session,
            notice,
            key=str(req.id),
            subject=str(req.id),
            prefix=ctx.topic_prefix,
            jurisdiction=enforcing,
        )
    return await out(session, req, with_history=True)


async def out(session: AsyncSession, req: LegalRequest, *, with_history: bool) -> RequestOut:
    steps = await repo.history(session, req.id) if with_history else None
    return RequestOut(
        id=req.id,
        case_id=req.case_id,
        type=RequestType(req.type),
        state=RequestState(req.state),
        review_state=ReviewState(req.review_state),
        platform=req.platform,
        issued_by=req.issued_by,
        enforcing_jurisdiction=req.enforcing_jurisdiction,
        categories=[rules.DataCategory(c) for c in req.categories],
        selectors=[SelectorIn.model_validate(s) for s in req.selectors],
        time_from=req.time_from,
        time_to=req.time_to,
        legal_basis=req.legal_basis,
        issuing_authority=req.issuing_authority,
        validated_by=req.validated_by,
        follows_request_id=req.follows_request_id,
        extended=req.extended,
        paused=req.paused_at is not None,
        received_at=req.received_at,
        deadline_at=req.deadline_at,
        objection_deadline_at=req.objection_deadline_at,
        preserved_until=req.preserved_until,
        created_at=req.created_at,
        updated_at=req.updated_at,
        history=None
        if steps is None
        else [
            HistoryOut(
                at=h.at,
                actor=h.actor,
                action=h.action,
                from_state=RequestState(h.from_state) if h.from_state else None,
                to_state=RequestState(h.to_state),
                details=h.details,
            )
            for h in steps
        ],
    )


async def read(session: AsyncSession, *, request_id: uuid.UUID, viewer: Viewer) -> RequestOut:
    """One request with its full history; anyone it does not concern gets NotFound."""
    return await out(session, await _load(session, request_id, viewer), with_history=True)


async def list_for(
    session: AsyncSession,
    *,
    viewer: Viewer,
    limit: int,
    cursor: str | None,
    state: RequestState | None = None,
    case_id: uuid.UUID | None = None,
) -> tuple[list[RequestOut], str | None]:
    """The requests the viewer may see, newest first."""
    if viewer.platform is not None:
        visible = LegalRequest.platform == viewer.platform
    else:
        assert viewer.jurisdiction is not None
        visible = repo.authority_sees(viewer.jurisdiction)
    rows, more = await repo.listing(
        session, visible=visible, limit=limit, cursor=cursor, state=state, case_id=case_id
    )
    items = [await out(session, r, with_history=False) for r in rows]
    nxt = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return items, nxt


def require_issuer(req: LegalRequest, viewer: Viewer) -> None:
    if viewer.jurisdiction != req.issued_by:
        raise Forbidden("only the issuing authority can do this")


def require_platform(viewer: Viewer) -> None:
    if viewer.platform is None:
        raise Forbidden("only the addressee platform can do this")


async def release_held(
    session: AsyncSession, req: LegalRequest, ctx: Context, now: datetime
) -> int:
    """Let held responses go to fan-out: `received`, with the event the router consumes."""
    held = await repo.held_responses(session, req.id)
    for resp in held:
        resp.fanout_state = FanoutState.RECEIVED.value
        event = events.ResponseReceived(
            response_id=resp.id,
            platform=resp.platform,
            handling_code=resp.handling_code,
            emergency=resp.emergency,
            received_at=now,
        )
        outbox.add(session, event, key=str(resp.id), subject=str(resp.id), prefix=ctx.topic_prefix)
    return len(held)


async def conclude_review(
    session: AsyncSession,
    req: LegalRequest,
    *,
    outcome: ReviewState,
    actor: str,
    ctx: Context,
    now: datetime,
) -> None:
    """The review ended without objection: release what was held, tell everyone."""
    req.review_state = outcome.value
    await repo.cancel_timers(session, req.id, [TimerKind.OBJECTION])
    released = await release_held(session, req, ctx, now)
    await record(
        session,
        req,
        actor=actor,
        action=f"review_{outcome.value}",
        to=RequestState(req.state),
        now=now,
        details={"released": released},
    )
    emit(
        session,
        req,
        events.ReviewConcluded,
        ctx,
        now,
        outcome=outcome.value,
        released_responses=released,
    )


def stop_clocks_kinds(req: LegalRequest) -> list[TimerKind]:
    """The windows a terminal request no longer runs (the review may still run)."""
    kinds = [TimerKind.RESPONSE, TimerKind.PRESERVATION]
    if ReviewState(req.review_state) is not ReviewState.PENDING:
        kinds.append(TimerKind.OBJECTION)
    return kinds


def transition(req: LegalRequest, action: Action) -> RequestState:
    return rules.next_state(RequestType(req.type), RequestState(req.state), action)
