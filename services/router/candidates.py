"""Loading the cases the standing rules need for one response, and no others.

Loading every case on the response's platform made each fan-out's cost grow with the registry.
`rules.relevant` names the few cases that can change a decision; this loads exactly those, in one
statement (one round trip) whose parts each use an index.
"""

from __future__ import annotations

import uuid

from sqlalchemy import String, func, select, union
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry import rules
from services.registry.models import Case, CaseSelector


async def load(
    session: AsyncSession, response: rules.Response
) -> tuple[list[rules.Case], dict[uuid.UUID, str]]:
    """`rules.relevant(response, every case)`, and each loaded case's reference."""
    scope = response.scope
    shared = (
        select(CaseSelector.case_id, CaseSelector.value_hash)
        .where(CaseSelector.value_hash.in_(sorted(scope.selector_hashes)))
        .cte("shared")
    )
    named = {i for i in (scope.lead_case_id, response.requesting_case_id) if i is not None}
    lowest_open = (
        select(Case.id)
        .where(Case.platform == response.platform, Case.status == "open")
        .distinct(Case.opened_by)
        .order_by(Case.opened_by, Case.id)
        .subquery()
    )
    wanted = [select(shared.c.case_id), select(lowest_open.c.id)]
    if scope.case_ids or named:
        wanted.append(select(Case.id).where(Case.id.in_(sorted(scope.case_ids | named))))
    if scope.lead_case_id is not None:
        wanted.append(select(Case.id).where(Case.lead_case_id == scope.lead_case_id))
    hashes = func.array(
        select(shared.c.value_hash).where(shared.c.case_id == Case.id).scalar_subquery(),
        type_=ARRAY(String),
    )
    rows = (
        await session.execute(
            select(
                Case.id,
                Case.reference,
                Case.opened_by,
                Case.platform,
                Case.status,
                Case.coordinating_jurisdiction,
                Case.lead_case_id,
                hashes.label("hashes"),
            ).where(Case.id.in_(union(*wanted)))
        )
    ).all()
    cases = [
        rules.Case(
            id=row.id,
            opened_by=row.opened_by,
            platform=row.platform,
            status=rules.CaseStatus(row.status),
            coordinator=row.coordinating_jurisdiction,
            lead_case_id=row.lead_case_id,
            selector_hashes=frozenset(row.hashes),
        )
        for row in rows
    ]
    return cases, {row.id: row.reference for row in rows}
