"""The hub's JWS, made without joserfc's serializer: the same segments joserfc makes, and a
signature joserfc (and `verify`) accepts."""

from __future__ import annotations

import pytest
from joserfc import jws

from shared import evidence

CLAIMS = {"b": [1, "é"], "a": {"z": None, "y": True}}


def test_a_token_has_joserfcs_header_and_payload_and_verifies() -> None:
    signer = evidence.generate_signer()
    ours = evidence.sign(CLAIMS, signer, typ=evidence.EVIDENCE_TYP)
    header = {"alg": evidence.ALG, "kid": signer.kid, "typ": evidence.EVIDENCE_TYP}
    theirs = jws.serialize_compact(
        header, evidence.canonical_json(CLAIMS), signer.key, algorithms=[evidence.ALG]
    )
    assert ours.split(".")[:2] == theirs.split(".")[:2]
    keys = evidence.keys_by_kid({"keys": [evidence.public_jwk(signer)]})
    assert evidence.verify(ours, keys, typ=evidence.EVIDENCE_TYP) == CLAIMS
    with pytest.raises(evidence.VerificationFailed):
        evidence.verify(ours, keys, typ=evidence.DELIVERY_TYP)


def test_each_signature_is_64_bytes_and_fresh() -> None:
    signer = evidence.generate_signer()
    first, second = (evidence.sign(CLAIMS, signer, typ=evidence.DELIVERY_TYP) for _ in range(2))
    assert first != second  # ECDSA: a fresh nonce per signature
    assert len(evidence._unb64(first.split(".")[2])) == 64
