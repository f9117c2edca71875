"""Signed statements of the hub: evidence records and the signed payloads of deliveries.

Both are compact JWS (RFC 7515) with ES256, made with a hub signing key that is not the OAuth
token key and is published on its own JWKS (`/.well-known/evidence-jwks.json`). The `typ`
header says what a statement is (`EVIDENCE_TYP`, `DELIVERY_TYP`, `PLATFORM_TYP`), so one kind
can never be passed off as another.

Verification is deliberately strict, because "changing any byte makes it fail" is the promise:
- every segment must be canonical base64url (re-encoding gives the same text), so a flipped
  unused low bit in the last character of a segment is refused instead of silently decoding
  to the same bytes;
- the header may hold only `alg`, `kid` and `typ`, with `alg` ES256 and the expected `typ`;
- the key is chosen by `kid` from the given JWKS and must be an EC P-256 key.
This module imports no database or web code: the CLI and the example consumer verify offline.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

ALG: Final = "ES256"
EVIDENCE_TYP: Final = "caseshare-evidence+jws"
DELIVERY_TYP: Final = "caseshare-delivery+jws"
PLATFORM_TYP: Final = "caseshare-disclosures+jws"
_HEADER: Final = {"alg", "kid", "typ"}
_ECDSA_SHA256: Final = ec.ECDSA(hashes.SHA256())


class VerificationFailed(ValueError):
    """A statement that is not exactly what a known key signed; the message says why."""


@dataclass(frozen=True)
class Signer:
    """A private signing key and its kid; the key stays out of `repr` (it never reaches logs)."""

    kid: str
    key: ECKey

    def __repr__(self) -> str:
        return f"Signer(kid={self.kid!r})"


def generate_signer() -> Signer:
    """A new P-256 key for ES256, its kid the RFC 7638 thumbprint."""
    key = ECKey.generate_key("P-256", parameters={"alg": ALG, "use": "sig"}, auto_kid=True)
    assert key.kid is not None
    return Signer(kid=key.kid, key=key)


def public_jwk(signer: Signer) -> dict[str, Any]:
    """The public half, as published in a JWKS."""
    return {**signer.key.as_dict(private=False), "kid": signer.kid, "alg": ALG, "use": "sig"}


def canonical_json(value: Any) -> bytes:
    """The bytes signed for a JSON value: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sign(claims: Mapping[str, Any], signer: Signer, *, typ: str) -> str:
    """A compact JWS of `claims` (canonical JSON) by `signer`, typed `typ`.

    Made here rather than by joserfc, which checks and encodes the header of every token anew
    and cost more than the signature itself; the router signs two per delivery. The segments
    are the ones joserfc makes (tested), and `verify` checks them with joserfc."""
    signing_input = _signed_header(signer.kid, typ) + b"." + _b64(canonical_json(dict(claims)))
    private = signer.key.private_key
    if private is None:
        raise ValueError("a signer needs the private half of its key")
    der = private.sign(signing_input, _ECDSA_SHA256)
    r, s = decode_dss_signature(der)
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS: R || S, 32 bytes each
    return (signing_input + b"." + _b64(signature)).decode("ascii")


def _b64(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


@functools.lru_cache(maxsize=64)
def _signed_header(kid: str, typ: str) -> bytes:
    """The protected header's segment: the same few (kid, typ) pairs sign everything."""
    header = {"alg": ALG, "kid": kid, "typ": typ}
    return _b64(json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode("ascii"))


def import_public(jwk: Mapping[str, Any]) -> ECKey:
    """An EC P-256 public key for verification, or VerificationFailed."""
    if not isinstance(jwk, Mapping) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise VerificationFailed("a signing key must be an EC P-256 JWK")
    if "d" in jwk:
        raise VerificationFailed("a published key must not hold private material")
    try:
        return ECKey.import_key({k: jwk[k] for k in ("kty", "crv", "x", "y")})
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise VerificationFailed(f"malformed signing key: {type(exc).__name__}") from exc


def keys_by_kid(jwks: Mapping[str, Any]) -> dict[str, ECKey]:
    """The keys of a JWKS document (`{"keys": [...]}`), by kid."""
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise VerificationFailed("a JWKS must be an object with a 'keys' list")
    found: dict[str, ECKey] = {}
    for jwk in keys:
        if isinstance(jwk, Mapping) and isinstance(jwk.get("kid"), str):
            found[jwk["kid"]] = import_public(jwk)
    return found


def _unb64(segment: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise VerificationFailed("a segment is not base64url") from exc
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != segment:
        raise VerificationFailed("a segment is not canonical base64url")
    return raw


def verify(token: str, keys: Mapping[str, ECKey], *, typ: str) -> dict[str, Any]:
    """The claims of a compact JWS that a key in `keys` signed, with header `typ`.

    Raises VerificationFailed for anything else: another type, an unknown kid, a non-canonical
    encoding, a changed byte anywhere.
    """
    if not isinstance(token, str) or token.count(".") != 2:
        raise VerificationFailed("not a compact JWS (expected three dot-separated parts)")
    head, body, signature = token.split(".")
    try:
        header = json.loads(_unb64(head))
    except ValueError as exc:
        raise VerificationFailed("unreadable JWS header") from exc
    _unb64(body)
    _unb64(signature)
    if not isinstance(header, dict) or set(header) - _HEADER:
        raise VerificationFailed("unexpected JWS header members")
    if header.get("alg") != ALG or header.get("typ") != typ:
        raise VerificationFailed(f"expected alg {ALG} and typ {typ}")
    key = keys.get(str(header.get("kid")))
    if key is None:
        raise VerificationFailed("signed by a key that is not published")
    try:
        payload = jws.deserialize_compact(token, key, algorithms=[ALG]).payload
        claims = json.loads(payload)
    except (JoseError, ValueError, TypeError) as exc:
        raise VerificationFailed(f"signature does not verify: {type(exc).__name__}") from exc
    if not isinstance(claims, dict):
        raise VerificationFailed("signed content is not a JSON object")
    return claims


# The fields of a bundle's record that repeat what its JWS says, for readers without a decoder.
RECORD_FIELDS: Final = ("id", "kind", "subject_type", "subject_id", "at", "audit_digest")


def verify_bundle(bundle: Mapping[str, Any], jwks: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Check every record of an evidence bundle; returns their claims, or VerificationFailed.

    A record's readable fields must equal its signed claims, so an edit to either shows. A
    bundle must only hold records about its `subject` (e.g. `response:<id>`).
    """
    keys = keys_by_kid(jwks)
    if not isinstance(bundle, Mapping) or set(bundle) != {"subject", "records"}:
        raise VerificationFailed("a bundle is an object with 'subject' and 'records' only")
    records = bundle["records"]
    if not isinstance(records, list) or not records:
        raise VerificationFailed("a bundle must hold a non-empty 'records' list")
    subject = bundle.get("subject")
    out = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping) or set(record) != {*RECORD_FIELDS, "jws"}:
            raise VerificationFailed(f"record {index}: unexpected fields")
        try:
            claims = verify(record["jws"], keys, typ=EVIDENCE_TYP)
        except VerificationFailed as exc:
            raise VerificationFailed(f"record {index}: {exc}") from exc
        for name in RECORD_FIELDS:
            if record[name] != claims.get(name):
                raise VerificationFailed(f"record {index}: '{name}' differs from what is signed")
        if subject not in claims.get("subjects", []):
            raise VerificationFailed(f"record {index}: not about the bundle's subject")
        out.append(claims)
    return out


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a JWS the hub itself signed and stored, read without checking (for
    listing only; anything handed to others is checked with `verify`)."""
    claims = json.loads(_unb64(token.split(".")[1]))
    if not isinstance(claims, dict):
        raise VerificationFailed("signed content is not a JSON object")
    return claims


def validate_signing_jwk(jwk: Mapping[str, Any]) -> dict[str, Any]:
    """A platform's registered signing key in normal form: EC P-256 public members, `use`
    sig, `alg` ES256 and a kid equal to its RFC 7638 thumbprint (no caller-chosen names)."""
    key = import_public(jwk)
    public = key.as_dict(private=False)
    return {
        **{k: public[k] for k in ("kty", "crv", "x", "y")},
        "use": "sig",
        "alg": ALG,
        "kid": key.thumbprint(),
    }
