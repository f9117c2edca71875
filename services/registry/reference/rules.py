"""Pure rules of the reference data: the statuses a jurisdiction can have and what they allow."""

from __future__ import annotations

from enum import StrEnum


class JurisdictionStatus(StrEnum):
    MEMBER = "member"
    PARTNER = "partner"
    ASSOCIATED = "associated"
    SUSPENDED = "suspended"


JURISDICTION_STATUSES = tuple(JurisdictionStatus)
