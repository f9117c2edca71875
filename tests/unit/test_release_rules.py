"""The release and minimisation rules, by example and by property.

Properties (Hypothesis), over any standing decisions, policy, handling code and disclosures:
no delivery ever reaches a jurisdiction the originator withheld; a recipient's payload never
holds a disclosure outside its matched selectors; and every jurisdiction still gets exactly one
recorded decision.
"""

from __future__ import annotations

from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.registry.cases.rules import (
    CaseStatus,
    CoordinationDecision,
    CoordinationState,
    ReleasePolicy,
    coordination_outcome,
    initial_status,
    may_become,
)
from services.registry.reference.rules import JurisdictionStatus
from services.registry.releases.rules import (
    Planned,
    ReleaseBasis,
    ReleaseDecision,
    ReleaseState,
    Requester,
    decide_release,
    initial_release,
    minimise,
    plan,
)
from services.registry.responses.rules import HandlingCode
from services.registry.standing.rules import Decision, Reason
from shared.errors import ValidationFailed

CODES = ["AA", "BB", "CC", "DD", "EE"]
HASHES = ["h1", "h2", "h3", "h4"]
CASES = [UUID(int=i) for i in range(1, 6)]
MEMBER, PARTNER, ASSOCIATED = (
    JurisdictionStatus.MEMBER,
    JurisdictionStatus.PARTNER,
    JurisdictionStatus.ASSOCIATED,
)
PROPERTY = settings(max_examples=200, deadline=None)


@st.composite
def decisions_st(draw: st.DrawFn) -> list[Decision]:
    out = []
    for code in CODES:
        included = draw(st.booleans())
        case = draw(st.sampled_from(CASES)) if included else None
        reason = Reason.SHARED_SELECTOR if included else Reason.NO_OPEN_CASE
        out.append(Decision(code, included, reason, case, "why"))
    return out


world_st = st.fixed_dictionaries(
    {code: st.sampled_from([MEMBER, PARTNER, ASSOCIATED]) for code in CODES}
)
requester_st = st.none() | st.builds(
    Requester,
    case_id=st.sampled_from(CASES),
    originator=st.sampled_from(CODES),
    coordinator=st.none() | st.sampled_from(CODES),
    policy=st.sampled_from(list(ReleasePolicy)),
)
hashes_st = st.none() | st.lists(st.sampled_from(HASHES), min_size=1, max_size=5)
case_hashes_st = st.fixed_dictionaries(
    {case: st.frozensets(st.sampled_from(HASHES), max_size=3) for case in CASES}
)


def planned(
    decisions: list[Decision],
    world: dict[str, JurisdictionStatus],
    requester: Requester | None,
    code: HandlingCode,
    hashes: list[str] | None,
    case_hashes: dict[UUID, frozenset[str]],
) -> list[Planned]:
    return plan(
        decisions,
        statuses=world,
        handling_code=code,
        requester=requester,
        disclosure_hashes=hashes,
        case_hashes=case_hashes,
    )


@PROPERTY
@given(
    decisions_st(),
    world_st,
    requester_st,
    st.sampled_from(list(HandlingCode)),
    hashes_st,
    case_hashes_st,
    st.data(),
)
def test_no_delivery_reaches_a_jurisdiction_the_originator_withheld(
    decisions: list[Decision],
    world: dict[str, JurisdictionStatus],
    requester: Requester | None,
    code: HandlingCode,
    hashes: list[str] | None,
    case_hashes: dict[UUID, frozenset[str]],
    data: st.DataObject,
) -> None:
    """Whatever the originator decides on each held delivery, in any order and repeatedly,
    a withheld jurisdiction ends with nothing published to it."""
    states: dict[str, ReleaseState] = {
        p.decision.jurisdiction: p.state
        for p in planned(decisions, world, requester, code, hashes, case_hashes)
        if p.state is not None
    }
    withheld: set[str] = set()
    for _ in range(data.draw(st.integers(0, 8))):
        code_ = data.draw(st.sampled_from(CODES))
        if code_ not in states:
            continue
        choice = data.draw(st.sampled_from(list(ReleaseDecision)))
        try:
            states[code_], _ = decide_release(states[code_], choice)
        except ValidationFailed:
            continue  # a second decision is refused and changes nothing
        if choice is ReleaseDecision.WITHHOLD:
            withheld.add(code_)
    published = {c for c, s in states.items() if s is ReleaseState.RELEASED}
    assert not published & withheld


@PROPERTY
@given(
    decisions_st(),
    world_st,
    requester_st,
    st.sampled_from(list(HandlingCode)),
    hashes_st,
    case_hashes_st,
)
def test_a_payload_never_holds_a_disclosure_outside_its_matched_selectors(
    decisions: list[Decision],
    world: dict[str, JurisdictionStatus],
    requester: Requester | None,
    code: HandlingCode,
    hashes: list[str] | None,
    case_hashes: dict[UUID, frozenset[str]],
) -> None:
    for p in planned(decisions, world, requester, code, hashes, case_hashes):
        if not p.decision.included or hashes is None:
            continue
        requesting = requester is not None and p.decision.jurisdiction in requester.parties
        assert p.disclosures, "a recipient with nothing to receive is excluded instead"
        if requesting:
            assert p.disclosures == tuple(range(len(hashes)))  # the originator gets everything
            continue
        assert p.decision.matched_case_id is not None
        matched = case_hashes[p.decision.matched_case_id]
        assert all(hashes[i] in matched for i in p.disclosures)
        # and nothing that matches is left out
        assert set(p.disclosures) == {i for i, h in enumerate(hashes) if h in matched}


@PROPERTY
@given(
    decisions_st(),
    world_st,
    requester_st,
    st.sampled_from(list(HandlingCode)),
    hashes_st,
    case_hashes_st,
)
def test_every_jurisdiction_still_gets_exactly_one_recorded_decision(
    decisions: list[Decision],
    world: dict[str, JurisdictionStatus],
    requester: Requester | None,
    code: HandlingCode,
    hashes: list[str] | None,
    case_hashes: dict[UUID, frozenset[str]],
) -> None:
    out = planned(decisions, world, requester, code, hashes, case_hashes)
    assert [p.decision.jurisdiction for p in out] == [d.jurisdiction for d in decisions]
    for p in out:
        # a recipient carries its release decision and basis; an exclusion has neither
        assert (p.state is None) == (p.basis is None) == (not p.decision.included)
        if not p.decision.included:
            assert p.decision.reason not in {Reason.SHARED_SELECTOR}
        if requester is None and p.decision.included:
            assert p.basis is ReleaseBasis.VOLUNTARY_DISCLOSURE


@PROPERTY
@given(world_st, requester_st, st.sampled_from(list(HandlingCode)))
def test_third_countries_and_h1_are_never_released_automatically(
    world: dict[str, JurisdictionStatus],
    requester: Requester | None,
    code: HandlingCode,
) -> None:
    for j, status in world.items():
        state, basis = initial_release(j, status, handling_code=code, requester=requester)
        if requester is None or j in requester.parties:
            continue
        if status is ASSOCIATED or code is HandlingCode.H1:
            assert (state, basis) == (ReleaseState.HELD, ReleaseBasis.AWAITING_ORIGINATOR)


def test_minimise_keeps_only_the_disclosures_about_the_cases_selectors() -> None:
    assert minimise(["a", "b", "a", None], {"a"}) == (0, 2)
    assert minimise(["a"], set()) == ()


def test_a_recipient_whose_selectors_cover_nothing_is_excluded_with_the_reason() -> None:
    d = Decision("DE", True, Reason.SHARED_SELECTOR, CASES[0], "why")
    [p] = planned([d], {"DE": MEMBER}, None, HandlingCode.H0, ["x"], {CASES[0]: frozenset()})
    assert (p.decision.included, p.decision.reason) == (False, Reason.NO_MATCHING_DISCLOSURE)


def test_policies() -> None:
    def released(policy: ReleasePolicy, status: JurisdictionStatus) -> bool:
        requester = Requester(CASES[0], "FR", "IT", policy)
        state, _ = initial_release("DE", status, handling_code=HandlingCode.H0, requester=requester)
        return state is ReleaseState.RELEASED

    assert not released(ReleasePolicy.NONE, MEMBER)
    assert released(ReleasePolicy.MEMBERS, MEMBER)
    assert not released(ReleasePolicy.MEMBERS, PARTNER)
    assert released(ReleasePolicy.MEMBERS_AND_PARTNERS, PARTNER)
    assert not released(ReleasePolicy.MEMBERS_AND_PARTNERS, ASSOCIATED)


def test_a_decision_is_taken_once() -> None:
    state, basis = decide_release(ReleaseState.HELD, ReleaseDecision.WITHHOLD)
    assert (state, basis) == (ReleaseState.WITHHELD, ReleaseBasis.ORIGINATOR_DECISION)
    with pytest.raises(ValidationFailed):
        decide_release(state, ReleaseDecision.RELEASE)


def test_coordination_steps() -> None:
    assert initial_status("FR") == (CaseStatus.PENDING_COORDINATION, CoordinationState.PENDING)
    assert initial_status(None) == (CaseStatus.OPEN, None)
    pending = (CaseStatus.PENDING_COORDINATION, CoordinationState.PENDING)
    assert coordination_outcome(*pending, CoordinationDecision.ACCEPT) == (
        CaseStatus.OPEN,
        CoordinationState.ACCEPTED,
    )
    assert coordination_outcome(*pending, CoordinationDecision.DECLINE) == (
        CaseStatus.SUSPENDED,
        CoordinationState.DECLINED,
    )
    with pytest.raises(ValidationFailed):
        coordination_outcome(*pending, None)  # nothing to withdraw yet
    assert coordination_outcome(CaseStatus.OPEN, CoordinationState.ACCEPTED, None) == (
        CaseStatus.SUSPENDED,
        CoordinationState.WITHDRAWN,
    )
    with pytest.raises(ValidationFailed):
        coordination_outcome(
            CaseStatus.OPEN, CoordinationState.ACCEPTED, CoordinationDecision.ACCEPT
        )
    # the opener can never reopen what its coordinator did not (or no longer) accept(s)
    for state in (
        CoordinationState.PENDING,
        CoordinationState.DECLINED,
        CoordinationState.WITHDRAWN,
    ):
        assert not may_become(CaseStatus.SUSPENDED, CaseStatus.OPEN, state)
    assert may_become(CaseStatus.SUSPENDED, CaseStatus.OPEN, CoordinationState.ACCEPTED)
    assert not may_become(CaseStatus.PENDING_COORDINATION, CaseStatus.OPEN, None)
