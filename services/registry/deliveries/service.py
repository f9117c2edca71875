"""A jurisdiction's inbox over REST: its deliveries (sealed) and their acknowledgement."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.audit import service as audit
from services.registry.cases.models import Case
from services.registry.context import Actor, Context, encode_cursor, keyset_page
from services.registry.deliveries.models import Delivery
from services.registry.deliveries.rules import DeliveryState
from services.registry.deliveries.schemas import Acknowledgement, InboxItem
from services.registry.evidence import service as evidence
from services.registry.evidence.rules import EvidenceKind
from services.registry.responses.models import CooperationResponse
from services.registry.responses.rules import HandlingCode
from services.registry.store import outbox
from shared.errors import NotFound, ValidationFailed
from shared.events import DeliveryAcknowledged

# A failed delivery stays visible with its state, so its recipient learns it existed; a
# recalled one (withdrawn before it was acknowledged) is gone.
VISIBLE_STATES = (
    DeliveryState.PENDING,
    DeliveryState.PUBLISHED,
    DeliveryState.ACKNOWLEDGED,
    DeliveryState.FAILED,
)


def _query() -> Select[tuple[Delivery, Case, CooperationResponse]]:
    return (
        select(Delivery, Case, CooperationResponse)
        .join(Case, Case.id == Delivery.case_id)
        .join(CooperationResponse, CooperationResponse.id == Delivery.response_id)
    )


def _item(d: Delivery, c: Case, r: CooperationResponse) -> InboxItem:
    return InboxItem(
        delivery_id=d.id,
        response_id=d.response_id,
        case_id=d.case_id,
        case_reference=c.reference,
        platform=r.platform,
        handling_code=HandlingCode(r.handling_code),
        rule=d.rule,
        state=d.state,
        disclosure_count=r.disclosure_count if d.disclosure_count is None else d.disclosure_count,
        handling_conditions=r.handling_conditions,
        recipient_kid=d.recipient_kid,
        sealed_disclosures=d.sealed_disclosures,
        created_at=d.created_at,
        published_at=d.published_at,
        acknowledged_at=d.acknowledged_at,
    )


async def list_for(
    session: AsyncSession,
    *,
    jurisdiction: str,
    limit: int,
    cursor: str | None,
    unacknowledged: bool = False,
) -> tuple[list[InboxItem], str | None]:
    """Oldest first, so a reader that pages through sees deliveries in arrival order."""
    query = _query().where(
        Delivery.jurisdiction == jurisdiction, Delivery.state.in_(VISIBLE_STATES)
    )
    if unacknowledged:
        query = query.where(Delivery.state != DeliveryState.ACKNOWLEDGED)
    query = keyset_page(
        query, Delivery.created_at, Delivery.id, cursor=cursor, limit=limit, newest_first=False
    )
    rows = (await session.execute(query)).all()
    page = rows[:limit]
    items = [_item(d, c, r) for d, c, r in page]
    last = page[-1][0] if page else None
    nxt = encode_cursor(last.created_at, last.id) if last and len(rows) > limit else None
    return items, nxt


async def read(session: AsyncSession, *, delivery_id: uuid.UUID, jurisdiction: str) -> InboxItem:
    row = (await session.execute(_query().where(Delivery.id == delivery_id))).first()
    if row is None or row[0].jurisdiction != jurisdiction or row[0].state not in VISIBLE_STATES:
        raise NotFound("no such delivery")
    return _item(*row)


async def acknowledge(
    session: AsyncSession,
    *,
    actor: Actor,
    delivery_id: uuid.UUID,
    ctx: Context,
    accept_conditions: bool = False,
) -> Acknowledgement:
    """Idempotent: acknowledging twice answers with the first acknowledgement's time.

    An H3 delivery is acknowledged only together with the acceptance of its handling
    conditions (`accept_conditions`), which is recorded with the acknowledgement. A delivery
    that is held or withheld is not the recipient's to see: NotFound."""
    delivery = await session.get(Delivery, delivery_id, with_for_update=True)
    if (
        delivery is None
        or delivery.jurisdiction != actor.jurisdiction
        or delivery.state not in VISIBLE_STATES
    ):
        raise NotFound("no such delivery")
    if delivery.acknowledged_at is None:
        resp = await session.get(CooperationResponse, delivery.response_id)
        assert resp is not None
        h3 = resp.handling_code == HandlingCode.H3
        if h3 and not accept_conditions:
            raise ValidationFailed(
                "this delivery carries H3 handling conditions: acknowledge it with"
                ' {"accept_conditions": true}'
            )
        now = datetime.now(UTC)
        delivery.state, delivery.acknowledged_at = DeliveryState.ACKNOWLEDGED, now
        delivery.acknowledged_by_client, delivery.next_attempt_at = actor.client_id, None
        delivery.conditions_accepted_at = now if h3 else None
        event = DeliveryAcknowledged(
            delivery_id=delivery.id,
            response_id=delivery.response_id,
            jurisdiction=delivery.jurisdiction,
            conditions_accepted=h3,
            acknowledged_at=now,
        )
        outbox.add(
            session,
            event,
            key=str(delivery.response_id),
            subject=str(delivery.id),
            prefix=ctx.topic_prefix,
        )
        digest = await audit.append(
            session,
            actor=actor.client_id,
            action="delivery.acknowledged",
            subject_type="delivery",
            subject_id=str(delivery.id),
            details={"jurisdiction": delivery.jurisdiction, "conditions_accepted": h3},
        )
        await evidence.record(
            session,
            evidence.Fact(
                EvidenceKind.RETRIEVED,
                "delivery",
                str(delivery.id),
                actor.client_id,
                response_id=delivery.response_id,
                delivery_id=delivery.id,
                details={"jurisdiction": delivery.jurisdiction},
                audit_digest=digest,
            ),
        )
    assert delivery.acknowledged_at is not None
    return Acknowledgement(
        delivery_id=delivery.id,
        state=DeliveryState.ACKNOWLEDGED,
        acknowledged_at=delivery.acknowledged_at,
        conditions_accepted_at=delivery.conditions_accepted_at,
    )
