"""Unit tests for the standing rules: one test per inclusion rule and exclusion reason."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import count
from uuid import UUID

import pytest

from services.registry.cases.rules import CaseStatus, ReleasePolicy
from services.registry.reference.rules import JurisdictionStatus
from services.registry.releases.rules import (
    ReleaseBasis,
    ReleaseState,
    Requester,
    initial_release,
)
from services.registry.responses.rules import HandlingCode
from services.registry.standing.rules import (
    Case,
    Decision,
    Jurisdiction,
    Reason,
    Response,
    ResponseScope,
    case_matches,
    decide,
    is_active,
)

MEMBER = JurisdictionStatus.MEMBER
PARTNER = JurisdictionStatus.PARTNER
ASSOCIATED = JurisdictionStatus.ASSOCIATED
SUSPENDED = JurisdictionStatus.SUSPENDED
_ids = count(1)


def new_id() -> UUID:
    return UUID(int=next(_ids))


def world(**statuses: JurisdictionStatus) -> dict[str, Jurisdiction]:
    return {code: Jurisdiction(code, status) for code, status in statuses.items()}


def case(
    opened_by: str,
    *,
    platform: str = "telegram",
    status: CaseStatus = CaseStatus.OPEN,
    coordinator: str | None = None,
    lead: UUID | None = None,
    selectors: Iterable[str] = (),
    id: UUID | None = None,
) -> Case:
    return Case(
        id=id or new_id(),
        opened_by=opened_by,
        platform=platform,
        status=status,
        coordinator=coordinator,
        lead_case_id=lead,
        selector_hashes=frozenset(selectors),
    )


def response(
    *,
    named: Iterable[Case] = (),
    selectors: Iterable[str] = (),
    lead: UUID | None = None,
    platform: str = "telegram",
    handling: HandlingCode = HandlingCode.H0,
    requesting: Case | None = None,
) -> Response:
    scope = ResponseScope(frozenset(c.id for c in named), frozenset(selectors), lead)
    requesting_id = requesting.id if requesting else None
    return Response(new_id(), platform, handling, scope, requesting_id)


def by_code(decisions: list[Decision]) -> dict[str, Decision]:
    return {d.jurisdiction: d for d in decisions}


def recipients(decisions: list[Decision]) -> set[str]:
    return {d.jurisdiction for d in decisions if d.included}


def test_named_case_includes_its_opener() -> None:
    fr = case("FR")
    got = by_code(decide(response(named=[fr]), cases=[fr], jurisdictions=world(FR=MEMBER)))
    assert got["FR"] == Decision("FR", True, Reason.NAMED_CASE, fr.id, got["FR"].detail)


def test_shared_selector_includes_the_opener() -> None:
    de = case("DE", selectors=["h1", "h2"])
    got = decide(response(selectors=["h2"]), cases=[de], jurisdictions=world(DE=MEMBER))
    assert (got[0].included, got[0].reason, got[0].matched_case_id) == (
        True,
        Reason.SHARED_SELECTOR,
        de.id,
    )


@pytest.mark.parametrize("joins_itself", [True, False])
def test_joined_lead_case_includes_lead_and_joining_cases(joins_itself: bool) -> None:
    lead = case("FR")
    member = case("NL", lead=lead.id) if not joins_itself else lead
    jurisdictions = world(FR=MEMBER, NL=MEMBER)
    got = by_code(decide(response(lead=lead.id), cases=[lead, member], jurisdictions=jurisdictions))
    assert got[member.opened_by].reason is Reason.JOINED_LEAD_CASE
    assert got[member.opened_by].included


def test_no_lead_on_either_side_is_not_a_match() -> None:
    assert case_matches(response(), case("FR")) is None


def test_coordinator_of_a_matched_case_is_included() -> None:
    kr = case("KR", coordinator="FR", selectors=["h1"])
    got = by_code(
        decide(
            response(selectors=["h1"]), cases=[kr], jurisdictions=world(KR=ASSOCIATED, FR=MEMBER)
        )
    )
    assert got["FR"].reason is Reason.COORDINATES_MATCHED_CASE
    assert got["FR"].included
    assert got["KR"].included


def test_named_case_beats_selector_and_lowest_id_breaks_ties() -> None:
    first, second = case("FR", selectors=["h1"]), case("FR", selectors=["h1"])
    named = case("FR", selectors=["h1"])
    shared = decide(
        response(selectors=["h1"]), cases=[second, first], jurisdictions=world(FR=MEMBER)
    )
    assert shared[0].matched_case_id == min(first.id, second.id)
    both = decide(
        response(named=[named], selectors=["h1"]),
        cases=[first, named],
        jurisdictions=world(FR=MEMBER),
    )
    assert (both[0].reason, both[0].matched_case_id) == (Reason.NAMED_CASE, named.id)


def test_no_case_at_all_is_no_open_case() -> None:
    got = decide(response(selectors=["h1"]), cases=[], jurisdictions=world(US=PARTNER))
    assert (got[0].included, got[0].reason, got[0].matched_case_id) == (
        False,
        Reason.NO_OPEN_CASE,
        None,
    )


def test_matching_case_on_another_platform_is_platform_mismatch() -> None:
    other = case("FR", platform="chirp", selectors=["h1"])
    got = decide(response(selectors=["h1"]), cases=[other], jurisdictions=world(FR=MEMBER))
    assert (got[0].reason, got[0].matched_case_id) == (Reason.PLATFORM_MISMATCH, other.id)


def test_open_case_outside_the_scope_is_scope_mismatch() -> None:
    unrelated = case("FR", selectors=["h9"])
    got = decide(response(selectors=["h1"]), cases=[unrelated], jurisdictions=world(FR=MEMBER))
    assert (got[0].reason, got[0].matched_case_id) == (Reason.SCOPE_MISMATCH, unrelated.id)


@pytest.mark.parametrize("status", [CaseStatus.CLOSED, CaseStatus.SUSPENDED])
def test_matching_case_not_open_is_case_not_open(status: CaseStatus) -> None:
    closed = case("FR", status=status)
    got = decide(response(named=[closed]), cases=[closed], jurisdictions=world(FR=MEMBER))
    assert (got[0].included, got[0].reason) == (False, Reason.CASE_NOT_OPEN)


def test_near_miss_precedence_prefers_the_closest_miss() -> None:
    closed = case("FR", status=CaseStatus.CLOSED, selectors=["h1"])
    elsewhere = case("FR", platform="chirp", selectors=["h1"])
    unrelated = case("FR")
    resp = response(selectors=["h1"])
    jurisdictions = world(FR=MEMBER)
    cases = [unrelated, elsewhere, closed]
    assert decide(resp, cases=cases, jurisdictions=jurisdictions)[0].reason is Reason.CASE_NOT_OPEN
    cases = [unrelated, elsewhere]
    got = decide(resp, cases=cases, jurisdictions=jurisdictions)[0]
    assert got.reason is Reason.PLATFORM_MISMATCH


def test_suspended_jurisdiction_is_excluded_even_with_a_named_case() -> None:
    hu = case("HU")
    got = decide(response(named=[hu]), cases=[hu], jurisdictions=world(HU=SUSPENDED))
    assert (got[0].included, got[0].reason, got[0].matched_case_id) == (
        False,
        Reason.SUSPENDED,
        hu.id,
    )


@pytest.mark.parametrize(
    ("coordinator", "statuses"),
    [
        (None, {}),
        ("FR", {"FR": SUSPENDED}),
        ("JP", {"JP": ASSOCIATED}),
        ("XX", {}),
    ],
)
def test_associated_opener_needs_an_active_coordinator(
    coordinator: str | None, statuses: dict[str, JurisdictionStatus]
) -> None:
    kr = case("KR", coordinator=coordinator)
    got = by_code(
        decide(response(named=[kr]), cases=[kr], jurisdictions=world(KR=ASSOCIATED, **statuses))
    )
    assert (got["KR"].included, got["KR"].reason) == (False, Reason.COORDINATOR_INACTIVE)


def test_associated_coordinator_gets_no_standing() -> None:
    ua = case("UA", coordinator="JP")
    got = by_code(
        decide(response(named=[ua]), cases=[ua], jurisdictions=world(UA=PARTNER, JP=ASSOCIATED))
    )
    assert (got["JP"].included, got["JP"].reason) == (False, Reason.COORDINATOR_INACTIVE)


def test_h2_reaches_only_requesting_opener_and_coordinator() -> None:
    kr = case("KR", coordinator="FR", selectors=["h1"])
    de = case("DE", selectors=["h1"])
    resp = response(selectors=["h1"], handling=HandlingCode.H2, requesting=kr)
    got = by_code(
        decide(resp, cases=[kr, de], jurisdictions=world(KR=ASSOCIATED, FR=MEMBER, DE=MEMBER))
    )
    assert recipients(list(got.values())) == {"KR", "FR"}
    assert (got["DE"].reason, got["DE"].matched_case_id) == (Reason.HANDLING_RESTRICTED, de.id)


def test_h2_without_requesting_case_reaches_nobody() -> None:
    fr = case("FR")
    got = decide(
        response(named=[fr], handling=HandlingCode.H2), cases=[fr], jurisdictions=world(FR=MEMBER)
    )
    assert (got[0].included, got[0].reason) == (False, Reason.HANDLING_RESTRICTED)


def test_h2_requesting_case_on_another_platform_reaches_nobody() -> None:
    fr = case("FR", selectors=["h1"])
    elsewhere = case("FR", platform="chirp")
    resp = response(selectors=["h1"], handling=HandlingCode.H2, requesting=elsewhere)
    got = decide(resp, cases=[fr, elsewhere], jurisdictions=world(FR=MEMBER))
    assert (got[0].included, got[0].reason) == (False, Reason.HANDLING_RESTRICTED)


@pytest.mark.parametrize("code", [HandlingCode.H0, HandlingCode.H1, HandlingCode.H3])
def test_standing_alone_does_not_restrict_h0_h1_h3(code: HandlingCode) -> None:
    """Standing is the same for H0, H1 and H3; what they restrict is decided after standing."""
    fr, de = case("FR", selectors=["h1"]), case("DE", selectors=["h1"])
    resp = response(selectors=["h1"], handling=code, requesting=fr)
    assert recipients(decide(resp, cases=[fr, de], jurisdictions=world(FR=MEMBER, DE=MEMBER))) == {
        "FR",
        "DE",
    }


def test_h1_holds_everyone_beyond_the_requesting_parties_whatever_the_policy() -> None:
    """H1 restricts: DE has standing but is held for the originator, even under a policy that
    would release members automatically; H0 under the same policy releases DE at once."""
    requester = Requester(new_id(), "FR", None, ReleasePolicy.MEMBERS_AND_PARTNERS)
    held = initial_release("DE", MEMBER, handling_code=HandlingCode.H1, requester=requester)
    assert held == (ReleaseState.HELD, ReleaseBasis.AWAITING_ORIGINATOR)
    assert initial_release("FR", MEMBER, handling_code=HandlingCode.H1, requester=requester) == (
        ReleaseState.RELEASED,
        ReleaseBasis.REQUESTING_PARTY,
    )
    h0 = initial_release("DE", MEMBER, handling_code=HandlingCode.H0, requester=requester)
    assert h0 == (ReleaseState.RELEASED, ReleaseBasis.CASE_POLICY)


def test_cases_of_unknown_openers_are_ignored() -> None:
    ghost = case("ZZ", coordinator="FR", selectors=["h1"])
    got = decide(response(selectors=["h1"]), cases=[ghost], jurisdictions=world(FR=MEMBER))
    assert [(d.jurisdiction, d.reason) for d in got] == [("FR", Reason.NO_OPEN_CASE)]


def test_mapping_key_must_match_code() -> None:
    with pytest.raises(ValueError, match="does not match"):
        decide(response(), cases=[], jurisdictions={"FR": Jurisdiction("DE", MEMBER)})


@pytest.mark.parametrize(
    ("status", "coordinator", "expected"),
    [
        (MEMBER, None, True),
        (PARTNER, None, True),
        (SUSPENDED, Jurisdiction("FR", MEMBER), False),
        (ASSOCIATED, None, False),
        (ASSOCIATED, Jurisdiction("FR", MEMBER), True),
        (ASSOCIATED, Jurisdiction("NO", PARTNER), True),
        (ASSOCIATED, Jurisdiction("JP", ASSOCIATED), False),
        (ASSOCIATED, Jurisdiction("FR", SUSPENDED), False),
    ],
)
def test_is_active(
    status: JurisdictionStatus, coordinator: Jurisdiction | None, expected: bool
) -> None:
    assert is_active(Jurisdiction("XX", status), coordinator) is expected


def test_seed_scenario() -> None:
    """FR's telegram group case, DE and BE sharing its selector, KR through FR."""
    group = "hash-of-group"
    fr = case("FR", selectors=[group, "hash-of-admin"])
    de, be = case("DE", selectors=[group]), case("BE", selectors=["x", group])
    kr = case("KR", coordinator="FR", selectors=[group])
    hu = case("HU", selectors=[group])
    jurisdictions = world(
        FR=MEMBER, DE=MEMBER, BE=MEMBER, KR=ASSOCIATED, US=PARTNER, HU=SUSPENDED, IT=MEMBER
    )
    cases = [fr, de, be, kr, hu]
    got = by_code(
        decide(response(named=[fr], selectors=[group]), cases=cases, jurisdictions=jurisdictions)
    )
    assert recipients(list(got.values())) == {"FR", "DE", "BE", "KR"}
    assert got["FR"].reason is Reason.NAMED_CASE
    assert got["KR"].reason is Reason.SHARED_SELECTOR
    assert got["US"].reason is Reason.NO_OPEN_CASE
    assert got["HU"].reason is Reason.SUSPENDED
    assert list(got) == sorted(jurisdictions)

    h2 = response(named=[fr], selectors=[group], handling=HandlingCode.H2, requesting=kr)
    assert recipients(decide(h2, cases=cases, jurisdictions=jurisdictions)) == {"KR", "FR"}


def test_details_never_carry_selector_values() -> None:
    fr = case("FR", selectors=["secret-hash"])
    for d in decide(
        response(selectors=["secret-hash"]), cases=[fr], jurisdictions=world(FR=MEMBER, US=PARTNER)
    ):
        assert "secret-hash" not in d.detail
        assert d.detail.endswith(".")
