"""Loading the cases the standing rules need for one response, and no others.

Loading every case on the response's platform made each fan-out's cost grow with the registry.
`rules.relevant` names the few cases that can change a decision; this loads exactly those, in
two statements that each use an index: the scope's selector matches, then the cases.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select, union
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry import rules
from services.registry.models import Case, CaseSelector


async def load(
    session: AsyncSession, response: rules.Response
) -> tuple[list[rules.Case], dict[uuid.UUID, str]]:
    """`rules.relevant(response, every case)`, and each loaded case's reference."""
    scope = response.scope
    hashes_by_case: dict[uuid.UUID, set[str]] = {}
    if scope.selector_hashes:
        shared = await session.execute(
            select(CaseSelector.case_id, CaseSelector.value_hash).where(
                CaseSelector.value_hash.in_(sorted(scope.selector_hashes))
            )
        )
        for case_id, value_hash in shared:
            hashes_by_case.setdefault(case_id, set()).add(value_hash)
    ids = set(scope.case_ids) | set(hashes_by_case)
    ids.update(i for i in (scope.lead_case_id, response.requesting_case_id) if i is not None)
    columns = (
        Case.id,
        Case.reference,
        Case.opened_by,
        Case.platform,
        Case.status,
        Case.coordinating_jurisdiction,
        Case.lead_case_id,
    )
    lowest_open = (
        select(Case.id)
        .where(Case.platform == response.platform, Case.status == "open")
        .distinct(Case.opened_by)
        .order_by(Case.opened_by, Case.id)
    )
    parts = [select(*columns).where(Case.id.in_(lowest_open))]
    if ids:
        parts.append(select(*columns).where(Case.id.in_(ids)))
    if scope.lead_case_id is not None:
        parts.append(select(*columns).where(Case.lead_case_id == scope.lead_case_id))
    rows = (await session.execute(union(*parts))).all()
    cases = [
        rules.Case(
            id=row.id,
            opened_by=row.opened_by,
            platform=row.platform,
            status=rules.CaseStatus(row.status),
            coordinator=row.coordinating_jurisdiction,
            lead_case_id=row.lead_case_id,
            selector_hashes=frozenset(hashes_by_case.get(row.id, ())),
        )
        for row in rows
    ]
    return cases, {row.id: row.reference for row in rows}
