"""The SQL of case registration, intake's hot path, as Core statements built once.

Through the ORM a registration cost a dozen round trips, a unit of work and statements built
afresh, and intake was CPU-bound on it. These statements are built at import, compiled once
per process and return plain rows; each use case still runs in its caller's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any, cast

from sqlalchemy import Row, String, Table, any_, bindparam, exists, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.cases.models import Case, CaseSelector
from services.registry.cases.rules import CaseStatus, References
from services.registry.reference.models import Jurisdiction, Platform
from services.registry.reference.rules import JurisdictionStatus

_cases = cast(Table, Case.__table__)
_selectors = cast(Table, CaseSelector.__table__)
_jurisdictions = cast(Table, Jurisdiction.__table__)
_platforms = cast(Table, Platform.__table__)


def _status_of(param: str) -> Any:
    code = _jurisdictions.c.code == bindparam(param)
    return select(_jurisdictions.c.status).where(code).scalar_subquery()


# One round trip for every reference check; None parameters simply find no row.
_REFERENCES = select(
    _status_of("opener"),
    _status_of("coordinator"),
    exists().where(_platforms.c.slug == bindparam("platform")),
    select(_cases.c.platform).where(_cases.c.id == bindparam("lead")).scalar_subquery(),
)
# The case and its selectors in one statement. A reference its opener already used inserts
# no case, hence no selectors, and returns no row. Written out as text: SQLAlchemy cannot
# cache PostgreSQL's ON CONFLICT, and compiling it on every request cost more than running it.
# Selector ids follow the order of the arrays, so reading them by id gives that order back.
_INSERT_CASE = text(
    "WITH new_case AS ("
    " INSERT INTO cases (id, reference, opened_by, platform, coordinating_jurisdiction,"
    " lead_case_id, offence_categories, legal_basis, status, emergency, release_policy,"
    " coordination_state, version, created_by_client, created_at, updated_at)"
    " VALUES (:id, :reference, :opened_by, :platform, :coordinating_jurisdiction,"
    " :lead_case_id, :offence_categories, :legal_basis, :status, :emergency, :release_policy,"
    " :coordination_state, :version, :created_by_client, :created_at, :updated_at)"
    " ON CONFLICT (opened_by, reference) DO NOTHING RETURNING id)"
    " INSERT INTO case_selectors (case_id, kind, value_hash, masked)"
    " SELECT new_case.id, s.kind, s.value_hash, s.masked FROM new_case,"
    " unnest(CAST(:kinds AS text[]), CAST(:hashes AS text[]), CAST(:masks AS text[]))"
    " WITH ORDINALITY AS s(kind, value_hash, masked, n)"
    " ORDER BY s.n RETURNING case_id"
)
# Selectors first, then their cases by primary key: a case table that grew faster than its
# statistics otherwise gets scanned for every open case on the platform, on every registration.
_HITS = (
    select(_selectors.c.case_id)
    .where(_selectors.c.value_hash == any_(bindparam("hashes", type_=ARRAY(String))))
    .cte("hits")
    .prefix_with("MATERIALIZED")
)
_OPEN_MATCHES = (
    select(_cases.c.id, _cases.c.opened_by, _cases.c.reference)
    .join(_HITS, _HITS.c.case_id == _cases.c.id)
    .join(_jurisdictions, _jurisdictions.c.code == _cases.c.opened_by)
    .where(
        _cases.c.platform == bindparam("platform"),
        _cases.c.opened_by != bindparam("opener"),
        _cases.c.status == CaseStatus.OPEN,
        # a suspended jurisdiction is told of no hit, and none is made with its cases
        _jurisdictions.c.status != JurisdictionStatus.SUSPENDED,
    )
    .distinct()
)


async def references(
    session: AsyncSession,
    *,
    opener: str,
    coordinator: str | None,
    platform: str,
    lead_case_id: uuid.UUID | None,
) -> References:
    """Read the opener's and coordinator's status, the platform and the lead case at once."""
    params = {"opener": opener, "coordinator": coordinator, "platform": platform}
    row = (await session.execute(_REFERENCES, {**params, "lead": lead_case_id})).one()
    return References(row[0], row[1], bool(row[2]), row[3])


async def insert_case(
    session: AsyncSession, values: dict[str, Any], selectors: Sequence[tuple[str, str, str]]
) -> bool:
    """Insert a case row and its (kind, hash, masked) selectors, in their order.

    False, and nothing written, if the case's opener already used its reference.
    """
    kinds, hashes, masks = (list(column) for column in zip(*selectors, strict=True))
    params = {**values, "kinds": kinds, "hashes": hashes, "masks": masks}
    return (await session.execute(_INSERT_CASE, params)).first() is not None


async def open_matches(
    session: AsyncSession, *, hashes: Collection[str], platform: str, opener: str
) -> Sequence[Row[tuple[uuid.UUID, str, str]]]:
    """Open cases of other jurisdictions on `platform` with a selector among `hashes`."""
    params = {"hashes": list(hashes), "platform": platform, "opener": opener}
    result = await session.execute(_OPEN_MATCHES, params)
    return cast(Sequence[Row[tuple[uuid.UUID, str, str]]], result.all())
