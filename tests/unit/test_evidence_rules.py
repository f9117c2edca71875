"""Pure evidence rules and the strictness of signed-statement verification."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest

from services.registry.evidence.rules import (
    EvidenceKind,
    build_claims,
    nameable_jurisdictions,
)
from shared import evidence


def test_only_openers_of_cases_the_platform_named_are_nameable() -> None:
    named = nameable_jurisdictions(named_case_openers={"FR", "IT"}, recipients={"FR", "DE"})
    assert named == frozenset({"FR"})
    assert nameable_jurisdictions(named_case_openers=set(), recipients={"DE"}) == frozenset()


def test_claims_name_every_subject_once_and_the_time_in_utc() -> None:
    rid = uuid.uuid4()
    claims = build_claims(
        record_id=uuid.uuid4(),
        kind=EvidenceKind.RELAYED,
        subject_type="delivery",
        subject_id="d1",
        subjects=["delivery:d1", f"response:{rid}"],
        at=datetime(2026, 12, 1, 15, 0, tzinfo=UTC),
        audit_digest="0" * 64,
    )
    assert claims["subjects"] == sorted({"delivery:d1", f"response:{rid}"})
    assert claims["at"] == "2026-12-01T15:00:00.000000Z"
    assert claims["kind"] == "delivery.relayed"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_verify_refuses_anything_but_the_exact_statement() -> None:
    signer = evidence.generate_signer()
    keys = evidence.keys_by_kid({"keys": [evidence.public_jwk(signer)]})
    token = evidence.sign({"a": 1}, signer, typ=evidence.EVIDENCE_TYP)
    assert evidence.verify(token, keys, typ=evidence.EVIDENCE_TYP) == {"a": 1}
    with pytest.raises(evidence.VerificationFailed, match="typ"):
        evidence.verify(token, keys, typ=evidence.DELIVERY_TYP)
    head, body, sig = token.split(".")
    # The last character of a 64-byte signature carries 2 unused bits: flipping them keeps
    # the bytes, and must still be refused.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    sibling = alphabet[last ^ 1]
    with pytest.raises(evidence.VerificationFailed, match="canonical"):
        evidence.verify(f"{head}.{body}.{sig[:-1]}{sibling}", keys, typ=evidence.EVIDENCE_TYP)
    extra = _b64(
        json.dumps({**json.loads(base64.urlsafe_b64decode(head + "==")), "jku": "x"}).encode()
    )
    with pytest.raises(evidence.VerificationFailed, match="header"):
        evidence.verify(f"{extra}.{body}.{sig}", keys, typ=evidence.EVIDENCE_TYP)
    stranger = evidence.sign({"a": 1}, evidence.generate_signer(), typ=evidence.EVIDENCE_TYP)
    with pytest.raises(evidence.VerificationFailed, match="not published"):
        evidence.verify(stranger, keys, typ=evidence.EVIDENCE_TYP)


def test_a_platform_key_is_normalised_and_a_private_one_refused() -> None:
    signer = evidence.generate_signer()
    public = evidence.public_jwk(signer)
    normal = evidence.validate_signing_jwk({**public, "kid": "chosen-by-caller"})
    assert normal["kid"] == signer.key.thumbprint()
    with pytest.raises(evidence.VerificationFailed):
        evidence.validate_signing_jwk(signer.key.as_dict(private=True))
