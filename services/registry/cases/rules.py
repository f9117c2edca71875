"""Pure rules of cases: their statuses, the transitions between them, and which references fit.

No I/O: the repository reads what a registration names (`References`), and these rules decide
whether it may go ahead, so every refusal is testable without a database.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from enum import StrEnum

from services.registry.reference.rules import JURISDICTION_STATUSES, JurisdictionStatus
from shared.errors import ValidationFailed


class CaseStatus(StrEnum):
    OPEN = "open"
    # named a coordinating member that has not accepted yet: no standing, no link notices
    PENDING_COORDINATION = "pending_coordination"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class ReleasePolicy(StrEnum):
    """What the opener lets the hub release of its responses without asking it each time."""

    NONE = "none"
    MEMBERS = "members"
    MEMBERS_AND_PARTNERS = "members_and_partners"


class CoordinationState(StrEnum):
    """Where the named coordinator's consent stands (None on a case without a coordinator)."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"


class CoordinationDecision(StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"


CASE_STATUSES = tuple(CaseStatus)
RELEASE_POLICIES = tuple(ReleasePolicy)
COORDINATION_STATES = tuple(CoordinationState)
# What the opener may do with PATCH; pending_coordination is left only by the coordinator's
# answer (`coordination_outcome`), never by the opener.
ALLOWED_TRANSITIONS = frozenset(
    {
        (CaseStatus.OPEN, CaseStatus.SUSPENDED),
        (CaseStatus.SUSPENDED, CaseStatus.OPEN),
        (CaseStatus.OPEN, CaseStatus.CLOSED),
        (CaseStatus.SUSPENDED, CaseStatus.CLOSED),
        (CaseStatus.PENDING_COORDINATION, CaseStatus.CLOSED),
    }
)


def may_become(
    current: CaseStatus, new: CaseStatus, coordination: CoordinationState | None = None
) -> bool:
    """Whether the opener may move a case from `current` to `new` (staying put is not one).

    A case whose coordinator has not accepted, declined or withdrew can never be reopened by
    its opener: that would give it standing the coordinator never agreed to.
    """
    if new is CaseStatus.OPEN and coordination not in (None, CoordinationState.ACCEPTED):
        return False
    return (current, new) in ALLOWED_TRANSITIONS


def initial_status(coordinator: str | None) -> tuple[CaseStatus, CoordinationState | None]:
    """A case naming a coordinator waits for its consent; any other case is open at once."""
    if coordinator is None:
        return CaseStatus.OPEN, None
    return CaseStatus.PENDING_COORDINATION, CoordinationState.PENDING


def coordination_outcome(
    status: CaseStatus, state: CoordinationState | None, decision: CoordinationDecision | None
) -> tuple[CaseStatus, CoordinationState]:
    """The coordinator's answer (accept/decline) or, with `decision` None, its withdrawal.

    Raises ValidationFailed for a step that does not follow: answering twice, withdrawing
    before accepting, or acting on a closed case.
    """
    if status is CaseStatus.CLOSED:
        raise ValidationFailed("the case is closed")
    if decision is None:
        if state is not CoordinationState.ACCEPTED:
            raise ValidationFailed("only an accepted coordination can be withdrawn")
        return CaseStatus.SUSPENDED, CoordinationState.WITHDRAWN
    if state is not CoordinationState.PENDING:
        raise ValidationFailed(f"coordination was already answered ({state})")
    if decision is CoordinationDecision.ACCEPT:
        return CaseStatus.OPEN, CoordinationState.ACCEPTED
    return CaseStatus.SUSPENDED, CoordinationState.DECLINED


@dataclass(frozen=True, slots=True)
class References:
    """The rows a registration names, as committed now; None where there is no such row."""

    opener_status: str | None
    coordinator_status: str | None
    platform_exists: bool
    lead_on_platform: bool  # the lead case exists and is on the registration's platform


def check_references(
    *,
    opener_code: str,
    coordinator_code: str | None,
    platform: str,
    lead_case_id: uuid.UUID | None,
    refs: References,
) -> None:
    """Refuse a registration whose opener, coordinator, platform or lead case does not fit."""
    opener = refs.opener_status
    if opener is None:
        raise ValidationFailed(f"unknown jurisdiction {opener_code}")
    if opener == JurisdictionStatus.SUSPENDED:
        raise ValidationFailed(f"jurisdiction {opener_code} is suspended and cannot open cases")
    if opener == JurisdictionStatus.ASSOCIATED and coordinator_code is None:
        raise ValidationFailed(
            f"{opener_code} takes part through a coordinating member state:"
            " coordinating_jurisdiction is required"
        )
    if coordinator_code is not None:
        if coordinator_code == opener_code:
            raise ValidationFailed("a case cannot be coordinated by its own opener")
        if refs.coordinator_status is None:
            raise ValidationFailed(f"unknown jurisdiction {coordinator_code}")
        if refs.coordinator_status != JurisdictionStatus.MEMBER:
            raise ValidationFailed(
                f"coordinating jurisdiction {coordinator_code} must be an active member state"
                f" (it is {refs.coordinator_status})"
            )
    if not refs.platform_exists:
        raise ValidationFailed(f"unknown platform {platform!r}")
    if lead_case_id is not None and not refs.lead_on_platform:
        raise ValidationFailed("lead_case_id must name an existing case on the same platform")


_STATUSES: tuple[str | None, ...] = (None, *JURISDICTION_STATUSES)
# Every state the references of a registration can be found in: a finite set, so the rule
# above can be asked in advance which of them it accepts.
_EVERY_REFERENCES = tuple(
    References(*combination)
    for combination in itertools.product(_STATUSES, _STATUSES, (False, True), (False, True))
)
_SOME_LEAD = uuid.UUID(int=0)


def accepted_references(
    opener_code: str, coordinator_code: str | None, *, lead_given: bool
) -> tuple[References, ...]:
    """The reference states `check_references` accepts for a registration of this shape.

    The database compares what it reads with these before it writes anything, in the same
    round trip, and hands back what it read when they differ, for `check_references` to word
    the refusal: the rule stays here, once. The platform's name and the lead case's id only
    appear in the rule's messages, so a placeholder stands in for them.
    """
    accepted = []
    for refs in _EVERY_REFERENCES:
        try:
            check_references(
                opener_code=opener_code,
                coordinator_code=coordinator_code,
                platform="-",
                lead_case_id=_SOME_LEAD if lead_given else None,
                refs=refs,
            )
        except ValidationFailed:
            continue
        accepted.append(refs)
    return tuple(accepted)
