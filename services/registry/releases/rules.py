"""Release and minimisation rules: after standing, who receives what, and when.

The data of a response belongs to the proceedings that obtained it. Standing (the standing
rules) says who *may* receive a response; these rules say who receives it *now*, who waits for
the originator (the opener of the requesting case) to release it, and which disclosures each
recipient's payload holds. Pure, so each outcome is property-tested without a database.

Release, for a recipient with standing, first that applies wins:
  1. no requesting case (a platform's voluntary disclosure): released, as before;
  2. the originator or the requesting case's accepted coordinator: released at once;
  3. H1: held, whatever the case policy says (nothing beyond the requesting parties without
     an explicit release);
  4. a jurisdiction that is neither member nor partner (third countries taking part through
     a coordinator): held, never released automatically;
  5. the requesting case's policy covers the recipient (`members`, `members_and_partners`):
     released by that policy;
  6. otherwise held.

Minimisation: the requesting parties get every disclosure; any other recipient only those
whose selector is one of the selectors of the case through which it has standing, and no
delivery at all (NO_MATCHING_DISCLOSURE) when none is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from uuid import UUID

from services.registry.cases.rules import ReleasePolicy
from services.registry.reference.rules import JurisdictionStatus
from services.registry.responses.rules import HandlingCode
from services.registry.standing.rules import Decision, Reason
from shared.errors import ValidationFailed


class ReleaseState(StrEnum):
    HELD = "held"
    RELEASED = "released"
    WITHHELD = "withheld"
    LAPSED = "lapsed"


class ReleaseBasis(StrEnum):
    """Why a delivery was (or is not yet) released: the recorded decision for every one."""

    VOLUNTARY_DISCLOSURE = "voluntary_disclosure"
    REQUESTING_PARTY = "requesting_party"
    CASE_POLICY = "case_policy"
    AWAITING_ORIGINATOR = "awaiting_originator"
    ORIGINATOR_DECISION = "originator_decision"
    NOT_DECIDED_IN_TIME = "not_decided_in_time"


class ReleaseDecision(StrEnum):
    RELEASE = "release"
    WITHHOLD = "withhold"


DEFAULT_LAPSE = timedelta(days=30)
DEFAULT_REMINDER = timedelta(days=3)
RELEASE_STATES = tuple(ReleaseState)
RELEASE_BASES = tuple(ReleaseBasis)
_POLICY_COVERS = {
    ReleasePolicy.NONE: frozenset[JurisdictionStatus](),
    ReleasePolicy.MEMBERS: frozenset({JurisdictionStatus.MEMBER}),
    ReleasePolicy.MEMBERS_AND_PARTNERS: frozenset(
        {JurisdictionStatus.MEMBER, JurisdictionStatus.PARTNER}
    ),
}


@dataclass(frozen=True, slots=True)
class Requester:
    """The requesting case as release needs it: its opener, accepted coordinator and policy."""

    case_id: UUID
    originator: str
    coordinator: str | None
    policy: ReleasePolicy

    @property
    def parties(self) -> frozenset[str]:
        return frozenset(c for c in (self.originator, self.coordinator) if c is not None)


@dataclass(frozen=True, slots=True)
class Planned:
    """One jurisdiction's outcome: the standing decision (turned into a NO_MATCHING_DISCLOSURE
    exclusion where minimisation left nothing), and for a recipient its release and payload."""

    decision: Decision
    state: ReleaseState | None
    basis: ReleaseBasis | None
    disclosures: tuple[int, ...]


def initial_release(
    jurisdiction: str,
    status: JurisdictionStatus,
    *,
    handling_code: HandlingCode,
    requester: Requester | None,
) -> tuple[ReleaseState, ReleaseBasis]:
    """Whether a recipient with standing receives at once, and on what basis (see module)."""
    if requester is None:
        return ReleaseState.RELEASED, ReleaseBasis.VOLUNTARY_DISCLOSURE
    if jurisdiction in requester.parties:
        return ReleaseState.RELEASED, ReleaseBasis.REQUESTING_PARTY
    if handling_code is HandlingCode.H1:
        return ReleaseState.HELD, ReleaseBasis.AWAITING_ORIGINATOR
    if status in _POLICY_COVERS[requester.policy]:
        return ReleaseState.RELEASED, ReleaseBasis.CASE_POLICY
    return ReleaseState.HELD, ReleaseBasis.AWAITING_ORIGINATOR


def minimise(
    disclosure_hashes: Sequence[str | None], case_hashes: Iterable[str]
) -> tuple[int, ...]:
    """The positions of the disclosures whose selector is one of the case's selectors."""
    mine = frozenset(case_hashes)
    return tuple(i for i, h in enumerate(disclosure_hashes) if h is not None and h in mine)


def plan(
    decisions: Iterable[Decision],
    *,
    statuses: Mapping[str, JurisdictionStatus],
    handling_code: HandlingCode,
    requester: Requester | None,
    disclosure_hashes: Sequence[str | None] | None,
    case_hashes: Mapping[UUID, frozenset[str]],
) -> list[Planned]:
    """Turn the standing decisions into deliveries and exclusions, one per jurisdiction.

    `disclosure_hashes` None (a response stored before selectors were kept per disclosure)
    gives every recipient every disclosure, as before.
    """
    everything = tuple(range(len(disclosure_hashes))) if disclosure_hashes is not None else ()
    out: list[Planned] = []
    for d in decisions:
        if not d.included:
            out.append(Planned(d, None, None, ()))
            continue
        requesting = requester is not None and d.jurisdiction in requester.parties
        if requesting or disclosure_hashes is None:
            chosen = everything
        else:
            assert d.matched_case_id is not None
            chosen = minimise(disclosure_hashes, case_hashes.get(d.matched_case_id, frozenset()))
        if not chosen and disclosure_hashes is not None:
            why = (
                f"{d.jurisdiction} is excluded because no disclosure concerns a selector"
                " of its case."
            )
            excluded = Decision(
                d.jurisdiction, False, Reason.NO_MATCHING_DISCLOSURE, d.matched_case_id, why
            )
            out.append(Planned(excluded, None, None, ()))
            continue
        state, basis = initial_release(
            d.jurisdiction,
            statuses[d.jurisdiction],
            handling_code=handling_code,
            requester=requester,
        )
        out.append(Planned(d, state, basis, chosen))
    return out


def decide_release(
    state: ReleaseState, decision: ReleaseDecision
) -> tuple[ReleaseState, ReleaseBasis]:
    """The originator's decision on a held delivery; anything not held is refused."""
    if state is not ReleaseState.HELD:
        raise ValidationFailed(f"this release was already decided ({state})")
    if decision is ReleaseDecision.RELEASE:
        return ReleaseState.RELEASED, ReleaseBasis.ORIGINATOR_DECISION
    return ReleaseState.WITHHELD, ReleaseBasis.ORIGINATOR_DECISION


def withheld_detail(jurisdiction: str, lapsed: bool) -> str:
    """The exclusion's explanation once a held delivery ends without being released."""
    if lapsed:
        return f"{jurisdiction} is excluded because the originator did not release it in time."
    return f"{jurisdiction} is excluded because the originator withheld the response."
