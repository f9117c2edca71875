"""Use cases of legal requests: issue, read and list them, and who may see which.

Issuing writes the request, its timers, a history row, an audit entry and its outbox events
(on `requests`, the platform's own topic and, for a review, the enforcing state's inbox) in the
caller's transaction; the later steps are in `steps`, written through `journal`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.cases import selectors
from services.registry.cases.models import Case, CaseSelector
from services.registry.cases.rules import CaseStatus
from services.registry.cases.schemas import SelectorIn
from services.registry.context import Actor, Context, encode_cursor
from services.registry.evidence import service as evidence
from services.registry.evidence.schemas import EvidenceBundle
from services.registry.reference.models import Platform
from services.registry.requests import journal, rules
from services.registry.requests import repository as repo
from services.registry.requests.models import LegalRequest
from services.registry.requests.rules import (
    RequestState,
    RequestType,
    ReviewState,
    TimerKind,
)
from services.registry.requests.schemas import HistoryOut, RequestCreate, RequestOut
from services.registry.store import outbox
from shared import events
from shared.errors import Forbidden, NotFound, ValidationFailed


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


async def load(session: AsyncSession, request_id: uuid.UUID, viewer: Viewer) -> LegalRequest:
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
    wins = journal.windows_of(req)
    req.deadline_at = wins[0].deadline
    objection = journal.window(req, TimerKind.OBJECTION)
    req.objection_deadline_at = objection.deadline if objection else None
    session.add(req)
    await session.flush()
    for w in wins:
        repo.add_timers(session, req.id, w)
    await journal.record(
        session,
        req,
        actor=actor.client_id,
        action="issued",
        to=RequestState(req.state),
        now=now,
        first=True,
        details={"type": req.type, "platform": req.platform, "enforcing": enforcing},
    )
    journal.emit(
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
    return await out(session, await load(session, request_id, viewer), with_history=True)


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


async def evidence_bundle(
    session: AsyncSession, *, request_id: uuid.UUID, jurisdiction: str
) -> EvidenceBundle:
    """The signed evidence of a request's steps (sent, answered), for the issuing authority
    only: to everyone else, the enforcing state included, it is a 404."""
    req = await session.get(LegalRequest, request_id)
    if req is None or req.issued_by != jurisdiction:
        raise NotFound("no such request")
    return await evidence.subject_bundle(session, subject_type="request", subject_id=str(req.id))


def require_issuer(req: LegalRequest, viewer: Viewer) -> None:
    if viewer.jurisdiction != req.issued_by:
        raise Forbidden("only the issuing authority can do this")


def require_platform(viewer: Viewer) -> None:
    if viewer.platform is None:
        raise Forbidden("only the addressee platform can do this")
