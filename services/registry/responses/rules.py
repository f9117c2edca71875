"""Pure rules of cooperation responses: the handling codes a platform can set."""

from __future__ import annotations

from enum import StrEnum


class HandlingCode(StrEnum):
    H0 = "H0"
    H1 = "H1"
    H2 = "H2"
    H3 = "H3"


HANDLING_CODES = tuple(HandlingCode)
