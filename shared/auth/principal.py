"""Who is calling: the verified facts an access token establishes, and nothing else.

Routes take identity (jurisdiction, platform) from here, never from a request body.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Principal:
    """The caller behind a validated access token."""

    subject: str
    client_id: str
    scopes: frozenset[str]
    jurisdiction: str | None
    platform: str | None
    token_id: str
    expires_at: datetime

    def has_scopes(self, *required: str) -> bool:
        """True when the token grants every one of `required`."""
        return self.scopes.issuperset(required)
