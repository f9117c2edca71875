"""Loading the cases the standing rules need for a batch of responses, and no others.

Loading every case on the response's platform made each fan-out's cost grow with the registry.
`rules.relevant` names the few cases that can change a decision; this loads exactly those, in one
statement (one round trip) whose parts each use an index, for a whole fan-out batch at once.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence, Set
from typing import Any, NamedTuple

from sqlalchemy import Select, String, any_, bindparam, func, select, true, union
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.cases.models import Case, CaseSelector
from services.registry.cases.rules import CaseStatus
from services.registry.reference.models import Jurisdiction
from services.registry.standing import rules


class Candidates(NamedTuple):
    """One response's relevant cases, each one's reference, and each one's selectors among
    the batch's disclosed ones (what minimisation needs of the cases a response reaches)."""

    cases: list[rules.Case]
    references: dict[uuid.UUID, str]
    disclosed: dict[uuid.UUID, frozenset[str]]


async def load(
    session: AsyncSession, response: rules.Response
) -> tuple[list[rules.Case], dict[uuid.UUID, str]]:
    """`rules.relevant(response, every case)`, and each loaded case's reference."""
    [loaded] = await load_many(session, [response])
    return loaded.cases, loaded.references


async def load_many(
    session: AsyncSession, responses: Sequence[rules.Response], *, disclosed: Set[str] = frozenset()
) -> list[Candidates]:
    """`load` for each of several responses, in one statement for them all: it reads what any
    of them needs (each part of the statement takes the union of their inputs), and
    `rules.relevant` then cuts that to each response's own cases. A response's relevant cases
    are all among what the union reads, each opener's lowest open case on its platform too,
    so the cut equals what a statement of its own would have read. The same statement reads
    each case's selectors among `disclosed`, so minimisation needs no read of its own."""
    if not responses:
        return []
    hashes: set[str] = set()
    named: set[uuid.UUID] = set()
    for response in responses:
        scope = response.scope
        hashes.update(scope.selector_hashes)
        named.update(scope.case_ids)
        named.update(i for i in (scope.lead_case_id, response.requesting_case_id) if i is not None)
    leads = {r.scope.lead_case_id for r in responses if r.scope.lead_case_id is not None}
    params = {
        "platforms": sorted({r.platform for r in responses}),
        "hashes": sorted(hashes),
        "named": sorted(named),
        "leads": sorted(leads),
        "disclosed": sorted(disclosed),
    }
    rows = (await session.execute(_statement(), params)).all()
    read = [
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
    cut = [rules.relevant(response, read) for response in responses]
    references = {row.id: row.reference for row in rows}
    among = {row.id: frozenset(row.disclosed) for row in rows}
    return [
        Candidates(
            cases, {c.id: references[c.id] for c in cases}, {c.id: among[c.id] for c in cases}
        )
        for cases in cut
    ]


@functools.cache
def _statement() -> Select[Any]:
    """Built once, with every input a parameter: building and keying this statement for
    each response cost more than running it."""
    shared = (
        select(CaseSelector.case_id, CaseSelector.value_hash)
        .where(CaseSelector.value_hash == any_(bindparam("hashes", type_=ARRAY(String))))
        .cte("shared")
    )
    # Each jurisdiction's lowest open case on each platform: one probe of the index
    # ix_cases_platform_status_opener per jurisdiction and platform, however many cases the
    # platform has (DISTINCT ON over the platform's open cases read and sorted all of them).
    platforms = (
        func.unnest(bindparam("platforms", type_=ARRAY(String)))
        .table_valued("slug")
        .render_derived(name="platforms")
    )
    lowest_open = (
        select(Case.id)
        .where(
            Case.platform == platforms.c.slug,
            Case.status == CaseStatus.OPEN,
            Case.opened_by == Jurisdiction.code,
        )
        .order_by(Case.id)
        .limit(1)
        .lateral("lowest_open")
    )
    wanted = union(
        select(shared.c.case_id),
        select(lowest_open.c.id)
        .select_from(Jurisdiction)
        .join(platforms, true())
        .join(lowest_open, true()),
        select(Case.id).where(Case.id == any_(bindparam("named", type_=ARRAY(UUID)))),
        select(Case.id).where(Case.lead_case_id == any_(bindparam("leads", type_=ARRAY(UUID)))),
    )
    hashes = func.array(
        select(shared.c.value_hash).where(shared.c.case_id == Case.id).scalar_subquery(),
        type_=ARRAY(String),
    )
    disclosed = func.array(
        select(CaseSelector.value_hash)
        .where(
            CaseSelector.case_id == Case.id,
            CaseSelector.value_hash == any_(bindparam("disclosed", type_=ARRAY(String))),
        )
        .scalar_subquery(),
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
        disclosed.label("disclosed"),
    ).where(Case.id.in_(wanted))
