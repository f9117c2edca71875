"""Pure rules of cases: their statuses, the transitions between them, and which references fit.

No I/O: the repository reads what a registration names (`References`), and these rules decide
whether it may go ahead, so every refusal is testable without a database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from services.registry.reference.rules import JurisdictionStatus
from shared.errors import ValidationFailed


class CaseStatus(StrEnum):
    OPEN = "open"
    SUSPENDED = "suspended"
    CLOSED = "closed"


CASE_STATUSES = tuple(CaseStatus)
ALLOWED_TRANSITIONS = frozenset(
    {
        (CaseStatus.OPEN, CaseStatus.SUSPENDED),
        (CaseStatus.SUSPENDED, CaseStatus.OPEN),
        (CaseStatus.OPEN, CaseStatus.CLOSED),
        (CaseStatus.SUSPENDED, CaseStatus.CLOSED),
    }
)


def may_become(current: CaseStatus, new: CaseStatus) -> bool:
    """Whether a case may move from `current` to `new` (staying put is not a transition)."""
    return (current, new) in ALLOWED_TRANSITIONS


@dataclass(frozen=True, slots=True)
class References:
    """The rows a registration names, as committed now; None where there is no such row."""

    opener_status: str | None
    coordinator_status: str | None
    platform_exists: bool
    lead_platform: str | None


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
    if lead_case_id is not None and refs.lead_platform != platform:
        raise ValidationFailed("lead_case_id must name an existing case on the same platform")
