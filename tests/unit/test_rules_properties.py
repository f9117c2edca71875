"""Property tests for the standing rules, checked against an independent oracle.

The oracle below restates DESIGN.md's standing rule directly, without sharing code with
``services.registry.standing.rules``, so a bug in the rules cannot hide in both places at once.
"""

from __future__ import annotations

import random
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from services.registry.cases.rules import CaseStatus
from services.registry.reference.rules import JurisdictionStatus
from services.registry.responses.rules import HandlingCode
from services.registry.standing.rules import (
    Case,
    Jurisdiction,
    Response,
    ResponseScope,
    decide,
    relevant,
)

CODES = ["AA", "BB", "CC", "DD", "EE", "FF"]
PLATFORMS = ["telegram", "chirp"]
HASHES = ["h1", "h2", "h3", "h4"]
CASE_IDS = [UUID(int=i) for i in range(1, 9)]
ACTIVE = {JurisdictionStatus.MEMBER, JurisdictionStatus.PARTNER}

# Local settings rather than a loaded profile, so other suites keep their own defaults.
PROPERTY = settings(max_examples=200, deadline=None)

jurisdictions_st = st.dictionaries(
    st.sampled_from(CODES), st.sampled_from(list(JurisdictionStatus)), min_size=1
).map(lambda d: {code: Jurisdiction(code, status) for code, status in d.items()})


@st.composite
def cases_st(draw: st.DrawFn) -> list[Case]:
    ids = draw(st.lists(st.sampled_from(CASE_IDS), unique=True, max_size=6))
    return [
        Case(
            id=case_id,
            opened_by=draw(st.sampled_from([*CODES, "ZZ"])),
            platform=draw(st.sampled_from(PLATFORMS)),
            status=draw(st.sampled_from(list(CaseStatus))),
            coordinator=draw(st.none() | st.sampled_from([*CODES, "ZZ"])),
            lead_case_id=draw(st.none() | st.sampled_from(CASE_IDS)),
            selector_hashes=draw(st.frozensets(st.sampled_from(HASHES), max_size=2)),
        )
        for case_id in ids
    ]


response_st = st.builds(
    Response,
    id=st.just(UUID(int=0)),
    platform=st.sampled_from(PLATFORMS),
    handling_code=st.sampled_from(list(HandlingCode)),
    scope=st.builds(
        ResponseScope,
        case_ids=st.frozensets(st.sampled_from(CASE_IDS), max_size=2),
        selector_hashes=st.frozensets(st.sampled_from(HASHES), max_size=2),
        lead_case_id=st.none() | st.sampled_from(CASE_IDS),
    ),
    requesting_case_id=st.none() | st.sampled_from(CASE_IDS),
)


def in_scope(r: Response, c: Case) -> bool:
    s = r.scope
    lead_hit = s.lead_case_id is not None and s.lead_case_id in {c.id, c.lead_case_id}
    return c.id in s.case_ids or lead_hit or bool(s.selector_hashes & c.selector_hashes)


def has_standing(code: str, r: Response, cases: list[Case], js: dict[str, Jurisdiction]) -> bool:
    """Standing before any handling-code restriction."""
    if js[code].status not in ACTIVE | {JurisdictionStatus.ASSOCIATED}:
        return False
    for c in cases:
        if c.opened_by not in js or c.platform != r.platform or c.status != CaseStatus.OPEN:
            continue
        if not in_scope(r, c):
            continue
        coord = js.get(c.coordinator or "")
        coord_ok = coord is not None and coord.status in ACTIVE
        if c.opened_by == code and (js[code].status in ACTIVE or coord_ok):
            return True
        if c.coordinator == code and js[code].status in ACTIVE:
            return True
    return False


def h2_allowed(r: Response, cases: list[Case], js: dict[str, Jurisdiction]) -> set[str]:
    for c in cases:
        if c.id == r.requesting_case_id and c.opened_by in js and c.platform == r.platform:
            return {x for x in (c.opened_by, c.coordinator) if x}
    return set()


def oracle(r: Response, cases: list[Case], js: dict[str, Jurisdiction]) -> set[str]:
    standing = {code for code in js if has_standing(code, r, cases, js)}
    if r.handling_code is HandlingCode.H2:
        standing &= h2_allowed(r, cases, js)
    return standing


@PROPERTY
@given(response_st, cases_st(), jurisdictions_st)
def test_recipients_are_exactly_those_with_standing(
    r: Response, cases: list[Case], js: dict[str, Jurisdiction]
) -> None:
    included = {d.jurisdiction for d in decide(r, cases=cases, jurisdictions=js) if d.included}
    assert included == oracle(r, cases, js)


@PROPERTY
@given(response_st, cases_st(), jurisdictions_st, st.randoms(use_true_random=False))
def test_case_order_does_not_change_the_outcome(
    r: Response, cases: list[Case], js: dict[str, Jurisdiction], rnd: random.Random
) -> None:
    shuffled = list(cases)
    rnd.shuffle(shuffled)
    reversed_js = dict(reversed(js.items()))
    assert decide(r, cases=cases, jurisdictions=js) == decide(
        r, cases=shuffled, jurisdictions=reversed_js
    )


@PROPERTY
@given(response_st, cases_st(), jurisdictions_st)
def test_every_jurisdiction_gets_exactly_one_decision(
    r: Response, cases: list[Case], js: dict[str, Jurisdiction]
) -> None:
    codes = [d.jurisdiction for d in decide(r, cases=cases, jurisdictions=js)]
    assert codes == sorted(js)


@PROPERTY
@given(response_st, cases_st(), jurisdictions_st)
def test_suspended_jurisdiction_is_never_included(
    r: Response, cases: list[Case], js: dict[str, Jurisdiction]
) -> None:
    for d in decide(r, cases=cases, jurisdictions=js):
        if js[d.jurisdiction].status is JurisdictionStatus.SUSPENDED:
            assert not d.included


@PROPERTY
@given(response_st, cases_st(), jurisdictions_st)
def test_included_decisions_name_an_open_matching_case(
    r: Response, cases: list[Case], js: dict[str, Jurisdiction]
) -> None:
    by_id = {c.id: c for c in cases}
    for d in decide(r, cases=cases, jurisdictions=js):
        if d.included:
            assert d.matched_case_id is not None
            c = by_id[d.matched_case_id]
            assert (c.platform, c.status, in_scope(r, c)) == (r.platform, CaseStatus.OPEN, True)
            assert d.jurisdiction in {c.opened_by, c.coordinator}


@PROPERTY
@given(response_st, cases_st(), jurisdictions_st)
def test_deciding_over_the_relevant_cases_changes_nothing(
    r: Response, cases: list[Case], js: dict[str, Jurisdiction]
) -> None:
    assert decide(r, cases=relevant(r, cases), jurisdictions=js) == decide(
        r, cases=cases, jurisdictions=js
    )
