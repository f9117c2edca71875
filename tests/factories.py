"""Factories for request bodies: each test states only what matters to it."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from services.registry.cases.schemas import CaseCreate, SelectorIn
from services.registry.cases.selectors import SelectorKind
from services.registry.requests.rules import RequestType
from services.registry.requests.schemas import RequestCreate
from services.registry.responses.rules import HandlingCode
from services.registry.responses.schemas import (
    Disclosure,
    DisclosureRecord,
    ResponseCreate,
    ResponseScopeIn,
)


def reference() -> str:
    return "REF-" + secrets.token_hex(6).upper()


def group_id() -> str:
    """A selector value unique to the test, so cross-matching sees only what the test made."""
    return "group-" + secrets.token_hex(8)


def selector(value: str | None = None, kind: SelectorKind = SelectorKind.GROUP_ID) -> SelectorIn:
    return SelectorIn(kind=kind, value=value or group_id())


def case(**overrides: Any) -> CaseCreate:
    data: dict[str, Any] = {
        "reference": reference(),
        "platform": "telegram",
        "legal_basis": "Art. 18 Budapest Convention production order",
        "offence_categories": ["fraud"],
        "selectors": [selector()],
    }
    data.update(overrides)
    return CaseCreate(**data)


def legal_request(
    case_id: uuid.UUID,
    sel: SelectorIn,
    kind: RequestType = RequestType.PRODUCTION,
    **overrides: Any,
) -> RequestCreate:
    """An order on `case_id` (a telegram case naming `sel`) for subscriber data by default."""
    data: dict[str, Any] = {
        "case_id": case_id,
        "type": kind,
        "platform": "telegram",
        "categories": ["subscriber"],
        "selectors": [sel],
        "legal_basis": "Art. 5 Regulation (EU) 2023/1543",
        "issuing_authority": "Parquet de Paris",
    }
    data.update(overrides)
    return RequestCreate(**data)


def disclosure(sel: SelectorIn | None = None) -> Disclosure:
    return Disclosure(
        selector=sel or selector(),
        category="subscriber",
        records=[
            DisclosureRecord(type="ip_address", value="203.0.113.7"),
            DisclosureRecord(type="phone_number", value="+33612345678"),
        ],
    )


def response(
    *,
    case_ids: list[uuid.UUID] | None = None,
    selectors: list[SelectorIn] | None = None,
    handling_code: HandlingCode = HandlingCode.H0,
    requesting_case_id: uuid.UUID | None = None,
    **overrides: Any,
) -> ResponseCreate:
    data: dict[str, Any] = {
        "scope": ResponseScopeIn(case_ids=case_ids or [], selectors=selectors or []),
        "handling_code": handling_code,
        "requesting_case_id": requesting_case_id,
        "disclosures": [disclosure((selectors or [None])[0])],
        "issued_at": datetime.now(UTC),
    }
    data.update(overrides)
    return ResponseCreate(**data)
