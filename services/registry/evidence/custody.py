"""Chain of custody of disclosures: the platform's signature checked on submission, and the
claims the hub signs into each sealed delivery.

A platform that registered a signing key (`platforms.signing_jwk`, set by an administrator)
must sign every submission: a compact JWS (ES256, `typ` caseshare-disclosures+jws) whose
claims are `{"disclosures": [...]}`, exactly the disclosures of the body. The hub refuses a
missing, foreign or mismatching signature (422), keeps the signature with the disclosures
until fan-out, and puts it, with the platform key it checked it against, inside the payload
it signs and seals for each recipient (`shared.sealing.open_verified` checks both).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from pydantic import ValidationError

from services.registry.responses.models import CooperationResponse
from services.registry.responses.schemas import Disclosure
from shared import evidence
from shared.errors import ValidationFailed


def check_platform_signature(
    signing_jwk: dict[str, Any] | None, signature: str | None, disclosures: list[dict[str, Any]]
) -> str | None:
    """The signature to keep, or ValidationFailed; `disclosures` as the hub stores them."""
    if signing_jwk is None:
        if signature is not None:
            raise ValidationFailed(
                "disclosures_signature given, but this platform has no signing key registered"
            )
        return None
    if signature is None:
        raise ValidationFailed("this platform signs its disclosures: disclosures_signature")
    try:
        key = evidence.import_public(signing_jwk)
        claims = evidence.verify(
            signature, {str(signing_jwk.get("kid")): key}, typ=evidence.PLATFORM_TYP
        )
        said = [
            Disclosure.model_validate_json(json.dumps(item)).model_dump(mode="json")
            for item in claims.get("disclosures") or []
        ]
    except (evidence.VerificationFailed, ValidationError, TypeError) as exc:
        reason = str(exc) if isinstance(exc, evidence.VerificationFailed) else "malformed claims"
        raise ValidationFailed(f"disclosures_signature is refused: {reason}") from None
    if said != disclosures:
        raise ValidationFailed("disclosures_signature does not cover these disclosures")
    return signature


def sealed_claims(
    resp: CooperationResponse,
    delivery_id: uuid.UUID,
    jurisdiction: str,
    disclosures: list[dict[str, Any]],
    platform_jwk: dict[str, Any] | None,
) -> dict[str, Any]:
    """What the hub signs for one recipient: whose delivery this is, and what it holds."""
    claims: dict[str, Any] = {
        "iss": "caseshare",
        "delivery_id": str(delivery_id),
        "response_id": str(resp.id),
        "jurisdiction": jurisdiction,
        "platform": resp.platform,
        "handling_code": resp.handling_code,
        "disclosures": disclosures,
    }
    if resp.platform_signature is not None and platform_jwk is not None:
        claims["platform_signature"] = resp.platform_signature
        claims["platform_jwk"] = platform_jwk
    return claims
