"""How every step of a request is written: its new state, a history row, an audit entry and
its outbox events, together; and the clocks a request runs, read from its row.

Shared by the use cases of `service`, `steps`, `answers` and `clocks`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.audit import service as audit
from services.registry.context import Context
from services.registry.deliveries.rules import FanoutState
from services.registry.evidence import service as evidence
from services.registry.evidence.rules import EvidenceKind
from services.registry.evidence.service import Fact
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
from services.registry.store import outbox
from shared import events

FREE_TEXT = frozenset({"detail", "grounds", "reason"})
# The steps that leave signed evidence (issue 14), in the step's own transaction: the order
# sent to the platform, and its answer.
PROVEN_STEPS = {"issued": EvidenceKind.REQUEST_SENT, "answered": EvidenceKind.REQUEST_ANSWERED}


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
    entry = await audit.append(
        session,
        actor=actor,
        action=f"request.{action}",
        subject_type="request",
        subject_id=str(req.id),
        details={"from": before, "to": to.value, **facts},
    )
    kind = PROVEN_STEPS.get(action)
    if kind is not None:
        await evidence.record(
            session,
            Fact(
                kind=kind,
                subject_type="request",
                subject_id=str(req.id),
                actor=actor,
                details={
                    "type": req.type,
                    "issued_by": req.issued_by,
                    "platform": req.platform,
                    "from": before,
                    "to": to.value,
                    **facts,
                },
                audit_digest=entry,
            ),
        )


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
