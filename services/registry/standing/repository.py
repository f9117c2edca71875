"""Loading the cases the standing rules need for one response, and no others.

Loading every case on the response's platform made each fan-out's cost grow with the registry.
`rules.relevant` names the few cases that can change a decision; this loads exactly those, in one
statement (one round trip) whose parts each use an index.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from sqlalchemy import Select, String, any_, bindparam, func, select, true, union
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.cases.models import Case, CaseSelector
from services.registry.cases.rules import CaseStatus
from services.registry.reference.models import Jurisdiction
from services.registry.standing import rules


async def load(
    session: AsyncSession, response: rules.Response
) -> tuple[list[rules.Case], dict[uuid.UUID, str]]:
    """`rules.relevant(response, every case)`, and each loaded case's reference."""
    scope = response.scope
    named = set(scope.case_ids)
    named.update(i for i in (scope.lead_case_id, response.requesting_case_id) if i is not None)
    rows = (
        await session.execute(
            _statement(),
            {
                "platform": response.platform,
                "hashes": sorted(scope.selector_hashes),
                "named": sorted(named),
                "lead": scope.lead_case_id,
            },
        )
    ).all()
    cases = [
        rules.Case(
            id=row.id,
            opened_by=row.opened_by,
            platform=row.platform,
            status=CaseStatus(row.status),
            coordinator=row.coordinating_jurisdiction,
            lead_case_id=row.lead_case_id,
            selector_hashes=frozenset(row.hashes),
        )
        for row in rows
    ]
    return cases, {row.id: row.reference for row in rows}


@functools.cache
def _statement() -> Select[Any]:
    """Built once, with every input a parameter: building and keying this statement for
    each response cost more than running it."""
    shared = (
        select(CaseSelector.case_id, CaseSelector.value_hash)
        .where(CaseSelector.value_hash == any_(bindparam("hashes", type_=ARRAY(String))))
        .cte("shared")
    )
    # Each jurisdiction's lowest open case on the platform: one probe of the index
    # ix_cases_platform_status_opener per jurisdiction, however many cases the platform has
    # (DISTINCT ON over the platform's open cases read and sorted all of them).
    lowest_open = (
        select(Case.id)
        .where(
            Case.platform == bindparam("platform", type_=String),
            Case.status == CaseStatus.OPEN,
            Case.opened_by == Jurisdiction.code,
        )
        .order_by(Case.id)
        .limit(1)
        .lateral("lowest_open")
    )
    wanted = union(
        select(shared.c.case_id),
        select(lowest_open.c.id).select_from(Jurisdiction).join(lowest_open, true()),
        select(Case.id).where(Case.id == any_(bindparam("named", type_=ARRAY(UUID)))),
        select(Case.id).where(Case.lead_case_id == bindparam("lead", type_=UUID)),
    )
    hashes = func.array(
        select(shared.c.value_hash).where(shared.c.case_id == Case.id).scalar_subquery(),
        type_=ARRAY(String),
    )
    return select(
        Case.id,
        Case.reference,
        Case.opened_by,
        Case.platform,
        Case.status,
        Case.coordinating_jurisdiction,
        Case.lead_case_id,
        hashes.label("hashes"),
    ).where(Case.id.in_(wanted))
