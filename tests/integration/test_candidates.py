"""The router loads only the cases that can change a decision: exactly `rules.relevant` of every
case in the registry, so the decisions are those over every case."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.cases import service as cases
from services.registry.cases.models import Case, CaseSelector
from services.registry.context import Actor, Context
from services.registry.reference.models import Jurisdiction
from services.registry.responses import service as responses
from services.registry.responses.models import CooperationResponse
from services.registry.responses.schemas import ResponseScopeIn
from services.registry.standing import repository as candidates
from services.registry.standing import rules
from services.router import fanout
from tests import factories

pytestmark = pytest.mark.integration


def actor(code: str) -> Actor:
    return Actor(client_id=f"authority-{code.lower()}", jurisdiction=code)


async def _every_case(session: AsyncSession) -> list[rules.Case]:
    """What the router loaded before: every case, with all of its selectors."""
    hashes: dict[object, set[str]] = {}
    for case_id, value_hash in await session.execute(
        select(CaseSelector.case_id, CaseSelector.value_hash)
    ):
        hashes.setdefault(case_id, set()).add(value_hash)
    return [
        rules.Case(
            id=c.id,
            opened_by=c.opened_by,
            platform=c.platform,
            status=rules.CaseStatus(c.status),
            coordinator=c.coordinating_jurisdiction,
            lead_case_id=c.lead_case_id,
            selector_hashes=frozenset(hashes.get(c.id, ())),
        )
        for c in (await session.scalars(select(Case))).all()
    ]


@pytest.mark.parametrize("handling_code", [rules.HandlingCode.H0, rules.HandlingCode.H2])
async def test_loads_exactly_the_relevant_cases_and_decides_the_same(
    session: AsyncSession, ctx: Context, handling_code: rules.HandlingCode
) -> None:
    group, other = factories.selector(), factories.selector()
    fr = await cases.register(
        session, actor=actor("FR"), data=factories.case(selectors=[group]), ctx=ctx
    )
    lead = await cases.register(session, actor=actor("NL"), data=factories.case(), ctx=ctx)
    await cases.register(
        session, actor=actor("IT"), data=factories.case(lead_case_id=lead.id), ctx=ctx
    )
    await cases.register(
        session,
        actor=actor("KR"),
        data=factories.case(selectors=[group], coordinating_jurisdiction="FR"),
        ctx=ctx,
    )
    await cases.register(  # a match on another platform
        session,
        actor=actor("BE"),
        data=factories.case(selectors=[group], platform="pixelgram"),
        ctx=ctx,
    )
    for _ in range(3):  # open on the platform, out of scope: only the lowest id is explained
        await cases.register(
            session, actor=actor("DE"), data=factories.case(selectors=[other]), ctx=ctx
        )
    accepted = await responses.submit(
        session,
        platform="telegram",
        client_id="platform-telegram",
        ctx=ctx,
        data=factories.response(
            selectors=[group],
            scope=ResponseScopeIn(case_ids=[fr.id], selectors=[group], lead_case_id=lead.id),
            handling_code=handling_code,
            requesting_case_id=fr.id,
        ),
    )
    resp = await session.get(CooperationResponse, accepted.id)
    assert resp is not None
    response = fanout._to_rule_response(resp)
    jurisdictions = {
        j.code: rules.Jurisdiction(j.code, rules.JurisdictionStatus(j.status))
        for j in (await session.scalars(select(Jurisdiction))).all()
    }

    loaded, references = await candidates.load(session, response)
    everything = await _every_case(session)

    assert sorted(loaded, key=lambda c: c.id) == sorted(
        rules.relevant(response, everything), key=lambda c: c.id
    )
    assert set(references) == {c.id for c in loaded}
    decided = rules.decide(response, cases=loaded, jurisdictions=jurisdictions)
    assert decided == rules.decide(response, cases=everything, jurisdictions=jurisdictions)
    reasons = {d.jurisdiction: d.reason for d in decided}
    assert reasons["BE"] is rules.Reason.PLATFORM_MISMATCH
    assert reasons["DE"] is rules.Reason.SCOPE_MISMATCH


async def test_a_platform_with_many_open_cases_is_probed_not_read(session: AsyncSession) -> None:
    """The lowest open case of each jurisdiction comes from one index probe per jurisdiction:
    the query never reads every open case of the platform, so a fan-out's cost does not grow
    with the registry (timings in BENCHMARKS.md; this checks the rows behind them)."""
    await session.execute(
        text(
            "INSERT INTO cases (id, reference, opened_by, platform, offence_categories,"
            " legal_basis, status, emergency, version, created_by_client, created_at, updated_at)"
            " SELECT gen_random_uuid(), 'PLAN-' || g, j.code, 'telegram', ARRAY['fraud'], 'x',"
            " 'open', false, 1, 'plan-test', now(), now()"
            " FROM generate_series(1, 20000) g"
            " JOIN (SELECT code, row_number() OVER (ORDER BY code) - 1 AS n FROM jurisdictions"
            "       WHERE status <> 'suspended') j ON j.n = g % 20"
        )
    )
    await session.execute(text("ANALYZE cases, case_selectors, jurisdictions"))
    compiled = candidates._statement().compile(dialect=session.bind.dialect)
    given = {"platforms": ["telegram"], "hashes": ["0" * 64], "named": [], "leads": []}
    args = [given.get(name, compiled.params.get(name)) for name in compiled.positiontup or ()]
    driver = (await (await session.connection()).get_raw_connection()).driver_connection
    assert driver is not None
    raw = await driver.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + compiled.string, *args)
    plan = raw if isinstance(raw, list) else json.loads(raw)  # the connection may decode json
    read = sum(
        node["Actual Rows"] * node["Actual Loops"]
        for node in _nodes(plan[0]["Plan"])
        if node.get("Relation Name") == "cases"
    )
    assert read < 1000, plan  # of 20,000 open cases: about one per jurisdiction


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)
