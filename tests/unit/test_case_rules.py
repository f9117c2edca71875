"""The registration rule asked in advance: which reference states it accepts.

`register_case` compares the references it reads with `accepted_references` before it writes
anything, so that list must be exactly what `check_references` lets through, for any opener,
coordinator, platform and lead case.
"""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from services.registry.cases.rules import References, accepted_references, check_references
from services.registry.reference.rules import JurisdictionStatus
from shared.errors import ValidationFailed

statuses = st.none() | st.sampled_from(list(JurisdictionStatus))
references = st.builds(References, statuses, statuses, st.booleans(), st.booleans())
codes = st.sampled_from(["FR", "DE", "KR", "US", "ZZ"])


def passes(refs: References, opener: str, coordinator: str | None, lead: uuid.UUID | None) -> bool:
    try:
        check_references(
            opener_code=opener,
            coordinator_code=coordinator,
            platform="telegram",
            lead_case_id=lead,
            refs=refs,
        )
    except ValidationFailed:
        return False
    return True


@given(refs=references, opener=codes, coordinator=st.none() | codes, lead=st.none() | st.uuids())
def test_the_accepted_states_are_exactly_those_the_rule_lets_through(
    refs: References, opener: str, coordinator: str | None, lead: uuid.UUID | None
) -> None:
    accepted = accepted_references(opener, coordinator, lead_given=lead is not None)
    assert (refs in accepted) is passes(refs, opener, coordinator, lead)


def test_a_member_without_coordinator_or_lead_registers_on_a_known_platform() -> None:
    accepted = accepted_references("FR", None, lead_given=False)
    assert References("member", None, True, False) in accepted
    assert References("partner", None, True, True) in accepted
    for refused in (
        References(None, None, True, False),  # unknown opener
        References("suspended", None, True, False),
        References("associated", None, True, False),  # needs a coordinator
        References("member", None, False, False),  # unknown platform
    ):
        assert refused not in accepted


def test_a_case_coordinated_by_its_own_opener_is_never_accepted() -> None:
    assert accepted_references("FR", "FR", lead_given=False) == ()
    assert References("associated", "member", True, True) in accepted_references(
        "KR", "FR", lead_given=True
    )
