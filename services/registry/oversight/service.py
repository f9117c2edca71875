"""What the coordinating desk may see: case and fan-out metadata, never disclosed data.

Every query here names the columns it reads, so selector hashes and masks, plaintext
disclosures and sealed ciphertexts are never even loaded into the registry process; the
output models have no field that could carry them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import RowMapping, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.registry.cases.models import Case, CaseLink, CaseSelector
from services.registry.cases.rules import CaseStatus
from services.registry.context import encode_cursor, keyset_page
from services.registry.deliveries.models import Delivery, Exclusion
from services.registry.deliveries.rules import DeliveryState, FanoutState
from services.registry.oversight.schemas import (
    CaseMap,
    CaseMapCell,
    CaseMetadata,
    DeliveryMetadata,
    ExclusionMetadata,
    Fanout,
    LinkedCase,
    ResponseMetadata,
)
from services.registry.responses.models import CooperationResponse
from shared.errors import NotFound

Q = TypeVar("Q", bound=Select[Any])


_CASE_COLUMNS = (
    Case.id,
    Case.reference,
    Case.opened_by,
    Case.platform,
    Case.coordinating_jurisdiction,
    Case.lead_case_id,
    Case.status,
    Case.emergency,
    Case.release_policy,
    Case.coordination_state,
    Case.coordination_reason,
    Case.offence_categories,
    Case.version,
    Case.created_at,
    Case.updated_at,
)
_RESPONSE_COLUMNS = (
    CooperationResponse.id,
    CooperationResponse.platform,
    CooperationResponse.handling_code,
    CooperationResponse.fanout_state,
    CooperationResponse.emergency,
    CooperationResponse.disclosure_count,
    CooperationResponse.issued_at,
    CooperationResponse.received_at,
    CooperationResponse.routed_at,
)
_DELIVERY_COLUMNS = (
    Delivery.id,
    Delivery.jurisdiction,
    Delivery.rule,
    Delivery.detail,
    Delivery.case_id,
    Delivery.state,
    Delivery.attempts,
    Delivery.created_at,
    Delivery.published_at,
    Delivery.acknowledged_at,
    Delivery.failed_at,
)
_EXCLUSION_COLUMNS = (
    Exclusion.id,
    Exclusion.jurisdiction,
    Exclusion.reason,
    Exclusion.detail,
    Exclusion.case_id,
    Exclusion.created_at,
)


def _case_filters(
    query: Q,
    *,
    platform: str | None,
    status: CaseStatus | None,
    opened_by: str | None,
) -> Q:
    if platform is not None:
        query = query.where(Case.platform == platform)
    if status is not None:
        query = query.where(Case.status == status.value)
    if opened_by is not None:
        query = query.where(Case.opened_by == opened_by)
    return query


async def case_map(
    session: AsyncSession,
    *,
    platform: str | None = None,
    status: CaseStatus | None = None,
    opened_by: str | None = None,
) -> CaseMap:
    """How many cases each jurisdiction has against each platform, with both margins."""
    query = select(Case.opened_by, Case.platform, func.count()).group_by(
        Case.opened_by, Case.platform
    )
    query = _case_filters(query, platform=platform, status=status, opened_by=opened_by)
    rows = (await session.execute(query.order_by(Case.opened_by, Case.platform))).all()
    cells = [CaseMapCell(jurisdiction=j, platform=p, cases=n) for j, p, n in rows]
    by_jurisdiction: dict[str, int] = {}
    by_platform: dict[str, int] = {}
    for cell in cells:
        by_jurisdiction[cell.jurisdiction] = by_jurisdiction.get(cell.jurisdiction, 0) + cell.cases
        by_platform[cell.platform] = by_platform.get(cell.platform, 0) + cell.cases
    return CaseMap(
        cells=cells,
        by_jurisdiction=by_jurisdiction,
        by_platform=dict(sorted(by_platform.items())),
        total=sum(c.cases for c in cells),
    )


async def list_cases(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None = None,
    platform: str | None = None,
    status: CaseStatus | None = None,
    opened_by: str | None = None,
) -> tuple[list[CaseMetadata], str | None]:
    """Every jurisdiction's cases, newest first, keyset-paginated like an opener's own list."""
    query = _case_filters(
        select(*_CASE_COLUMNS), platform=platform, status=status, opened_by=opened_by
    )
    query = keyset_page(
        query, Case.created_at, Case.id, cursor=cursor, limit=limit, newest_first=True
    )
    rows = (await session.execute(query)).mappings().all()
    page = rows[:limit]
    items = await _with_counts_and_links(session, page)
    nxt = encode_cursor(page[-1]["created_at"], page[-1]["id"]) if len(rows) > limit else None
    return items, nxt


async def read_case(session: AsyncSession, *, case_id: uuid.UUID) -> CaseMetadata:
    row = (await session.execute(select(*_CASE_COLUMNS).where(Case.id == case_id))).mappings()
    found = row.first()
    if found is None:
        raise NotFound("no such case")
    return (await _with_counts_and_links(session, [found]))[0]


async def _with_counts_and_links(
    session: AsyncSession, rows: Sequence[RowMapping]
) -> list[CaseMetadata]:
    """Attach selector counts and link partners to a page of case rows in two queries."""
    mappings = [dict(row) for row in rows]
    ids = [m["id"] for m in mappings]
    counted = await session.execute(
        select(CaseSelector.case_id, func.count())
        .where(CaseSelector.case_id.in_(ids))
        .group_by(CaseSelector.case_id)
    )
    counts = dict(counted.tuples().all())
    a, b = aliased(Case), aliased(Case)
    pairs = await session.execute(
        select(CaseLink.case_a, a.opened_by, CaseLink.case_b, b.opened_by)
        .join(a, a.id == CaseLink.case_a)
        .join(b, b.id == CaseLink.case_b)
        .where(or_(CaseLink.case_a.in_(ids), CaseLink.case_b.in_(ids)))
        .order_by(CaseLink.created_at, CaseLink.id)
    )
    links: dict[uuid.UUID, list[LinkedCase]] = {}
    for case_a, juris_a, case_b, juris_b in pairs.tuples():
        links.setdefault(case_a, []).append(LinkedCase(case_id=case_b, jurisdiction=juris_b))
        links.setdefault(case_b, []).append(LinkedCase(case_id=case_a, jurisdiction=juris_a))
    return [
        CaseMetadata(**m, selector_count=counts.get(m["id"], 0), links=links.get(m["id"], []))
        for m in mappings
    ]


async def list_responses(
    session: AsyncSession,
    *,
    limit: int,
    cursor: str | None = None,
    platform: str | None = None,
    fanout_state: FanoutState | None = None,
) -> tuple[list[ResponseMetadata], str | None]:
    """Cooperation responses, newest first; their content is never part of the answer."""
    query = select(*_RESPONSE_COLUMNS)
    if platform is not None:
        query = query.where(CooperationResponse.platform == platform)
    if fanout_state is not None:
        query = query.where(CooperationResponse.fanout_state == fanout_state)
    query = keyset_page(
        query,
        CooperationResponse.received_at,
        CooperationResponse.id,
        cursor=cursor,
        limit=limit,
        newest_first=True,
    )
    rows = (await session.execute(query)).mappings().all()
    items = [ResponseMetadata.model_validate(dict(r)) for r in rows[:limit]]
    last = items[-1] if items else None
    nxt = encode_cursor(last.received_at, last.id) if last and len(rows) > limit else None
    return items, nxt


async def fanout(session: AsyncSession, *, response_id: uuid.UUID) -> Fanout:
    """Who received a response and who was refused, ordered by jurisdiction code."""
    found = (
        (
            await session.execute(
                select(*_RESPONSE_COLUMNS).where(CooperationResponse.id == response_id)
            )
        )
        .mappings()
        .first()
    )
    if found is None:
        raise NotFound("no such response")
    # a withheld (or lapsed) delivery never went out: it is listed among the exclusions
    deliveries = await session.execute(
        select(*_DELIVERY_COLUMNS)
        .where(Delivery.response_id == response_id, Delivery.state != DeliveryState.WITHHELD)
        .order_by(Delivery.jurisdiction)
    )
    exclusions = await session.execute(
        select(*_EXCLUSION_COLUMNS)
        .where(Exclusion.response_id == response_id)
        .order_by(Exclusion.jurisdiction)
    )
    return Fanout(
        response=ResponseMetadata.model_validate(dict(found)),
        deliveries=[DeliveryMetadata.model_validate(dict(r)) for r in deliveries.mappings()],
        exclusions=[ExclusionMetadata.model_validate(dict(r)) for r in exclusions.mappings()],
    )
