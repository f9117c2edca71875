"""Sealed disclosures: disclosed personal data encrypted for one recipient jurisdiction.

After fan-out the registry keeps only these per-recipient ciphertexts, so a reader of the
wrong topic, a coordinator or the operator learns nothing from them. Each jurisdiction
registers a public key; a delivery's disclosures are a compact JWE (RFC 7516) that only
the matching private key opens.

The profile is deliberately narrow, and ``unseal`` accepts nothing else:
- ``alg`` ECDH-ES+A256KW (ephemeral-static key agreement, the CEK wrapped with AES-KW),
- ``enc`` A256GCM,
- recipient keys on P-256 (``kty`` EC) or X25519 (``kty`` OKP). P-384/P-521 are refused:
  one curve per key type keeps the profile small and every member state can produce them,
- ``kid`` is the RFC 7638 thumbprint of the recipient key, never a caller-chosen name, so
  two jurisdictions cannot register colliding kids,
- ``cty`` application/json: the payload is any JSON value, or ``cty`` JWT: the payload is a
  compact JWS by the hub (a signed delivery, below).
All randomness (ephemeral keys, CEK, IV) comes from joserfc and cryptography.

Signed deliveries. ECDH-ES authenticates no sender: anyone holding a member's public key can
make a JWE that opens cleanly with the member's private key. So the hub seals a *signed*
payload (`seal_signed`): a JWS (ES256, `typ` caseshare-delivery+jws) by a hub signing key
published at `/.well-known/evidence-jwks.json`, nested in the JWE. Its claims name the
delivery, response, recipient and platform, and carry the disclosures; when the platform
registered a signing key, they also carry the platform's own JWS over the disclosures and the
platform key the hub checked it with, so the recipient sees that the platform said exactly
this. `open_verified` decrypts and checks both signatures, and refuses anything unsigned.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidTag
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeyParameters, OKPKey

from shared import evidence

__all__ = [
    "ALG",
    "CONTENT_TYPE",
    "ENC",
    "MAX_PAYLOAD_BYTES",
    "InvalidKey",
    "KeyPair",
    "OpenedDelivery",
    "SealError",
    "generate_keypair",
    "open_verified",
    "public_from_private",
    "seal",
    "seal_signed",
    "sealed_for",
    "unseal",
    "validate_public_jwk",
]

ALG: Final = "ECDH-ES+A256KW"
ENC: Final = "A256GCM"
CONTENT_TYPE: Final = "application/json"
NESTED_CONTENT_TYPE: Final = "JWT"
#: Largest JSON payload we seal. joserfc refuses to *decrypt* ciphertexts over 64 KiB by
#: default, which a traffic-data disclosure easily exceeds, so both sides use this limit.
MAX_PAYLOAD_BYTES: Final = 8 * 1024 * 1024

_SUPPORTED_CURVES: Final = {"EC": "P-256", "OKP": "X25519"}
_PRIVATE_MEMBERS: Final = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_ENCRYPTION_OPS: Final = {"deriveKey", "deriveBits", "wrapKey", "encrypt"}
# Header members a token of ours may carry; anything else (zip, crit, jku, jwk, x5u, ...) is
# refused before any key is touched.
_ALLOWED_HEADER: Final = {"alg", "enc", "kid", "cty", "epk"}


class InvalidKey(ValueError):
    """A JWK that cannot serve as a sealing key; the message says why."""


class SealError(Exception):
    """A token that cannot be sealed or opened: wrong key, tampered or off-profile."""


@dataclass(frozen=True)
class KeyPair:
    """A recipient key pair; ``private_jwk`` stays out of ``repr`` so it never reaches logs."""

    private_jwk: dict[str, Any] = field(repr=False)
    public_jwk: dict[str, Any]
    kid: str


@functools.cache
def _registry() -> jwe.JWERegistry:
    registry = jwe.JWERegistry(algorithms=[ALG, ENC])
    # Base64url of MAX_PAYLOAD_BYTES plus the 16-byte GCM block slack.
    registry.max_ciphertext_length = (MAX_PAYLOAD_BYTES + 16) * 4 // 3 + 4
    return registry


def generate_keypair(*, curve: Literal["P-256", "X25519"] = "P-256") -> KeyPair:
    """Create a recipient key pair, for jurisdictions without their own tooling and tests."""
    parameters: KeyParameters = {"use": "enc", "alg": ALG}
    key: ECKey | OKPKey
    if curve == "P-256":
        key = ECKey.generate_key("P-256", parameters=parameters)
    else:
        key = OKPKey.generate_key("X25519", parameters=parameters)
    kid = key.thumbprint()
    private_jwk: dict[str, Any] = {**key.as_dict(private=True), "kid": kid}
    public_jwk = validate_public_jwk(dict(key.as_dict(private=False)))
    return KeyPair(private_jwk=private_jwk, public_jwk=public_jwk, kid=kid)


def public_from_private(private_jwk: dict[str, Any]) -> dict[str, Any]:
    """Derive the public JWK to register from a private one (never the other way round)."""
    key = _import_private(private_jwk)
    return validate_public_jwk(dict(key.as_dict(private=False)))


def validate_public_jwk(jwk: dict[str, Any]) -> dict[str, Any]:
    """Check a JWK a jurisdiction registers and return its normalised public form.

    Registration is where a mistake is cheapest to catch: a private key pasted by accident,
    a signing key, a shared secret or an invalid curve point must be refused here, not when
    the first disclosure is sealed. The result holds only kty, crv, x, (y), use, alg and a
    kid equal to the thumbprint; any caller-supplied kid and other members are dropped.
    """
    if not isinstance(jwk, dict):
        raise InvalidKey("a JWK must be a JSON object")
    leaked = [name for name in _PRIVATE_MEMBERS if name in jwk]
    if leaked:
        raise InvalidKey(
            f"JWK contains private key material ({', '.join(leaked)}); register the public key only"
        )
    key = _import_checked(jwk)
    public = dict(key.as_dict(private=False))
    normalised = {name: public[name] for name in ("kty", "crv", "x", "y") if name in public}
    return {**normalised, "use": "enc", "alg": ALG, "kid": key.thumbprint()}


def seal(payload: Any, public_jwk: dict[str, Any]) -> str:
    """Encrypt a JSON-serialisable payload so that only the holder of the private key reads it.

    Raises InvalidKey for an unusable key, TypeError/ValueError for a payload JSON cannot
    represent (including NaN/Infinity), and SealError for one over MAX_PAYLOAD_BYTES.
    """
    plaintext = json.dumps(
        payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")
    return _encrypt(plaintext, public_jwk, CONTENT_TYPE)


def seal_signed(claims: dict[str, Any], public_jwk: dict[str, Any], signer: evidence.Signer) -> str:
    """Sign `claims` as the hub (a JWS) and seal that for the recipient (`cty` JWT)."""
    inner = evidence.sign(claims, signer, typ=evidence.DELIVERY_TYP)
    return _encrypt(inner.encode("ascii"), public_jwk, NESTED_CONTENT_TYPE)


def _encrypt(plaintext: bytes, public_jwk: dict[str, Any], cty: str) -> str:
    kid, key = _recipient(public_jwk)
    if len(plaintext) > MAX_PAYLOAD_BYTES:
        raise SealError(f"payload is {len(plaintext)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    header = {"alg": ALG, "enc": ENC, "kid": kid, "cty": cty}
    return jwe.encrypt_compact(header, plaintext, key, registry=_registry())


def _recipient(public_jwk: dict[str, Any]) -> tuple[str, ECKey | OKPKey]:
    """The kid and imported key for a registered public JWK, checked once per distinct key:
    a fan-out seals for several recipients, and every response for the same ones."""
    try:
        canonical = json.dumps(public_jwk, sort_keys=True)
    except (TypeError, ValueError):
        canonical = None
    if canonical is None or not isinstance(public_jwk, dict):
        return _import_recipient(public_jwk)
    return _import_canonical(canonical)


@functools.lru_cache(maxsize=256)
def _import_canonical(canonical: str) -> tuple[str, ECKey | OKPKey]:
    return _import_recipient(json.loads(canonical))


def _import_recipient(public_jwk: dict[str, Any]) -> tuple[str, ECKey | OKPKey]:
    recipient = validate_public_jwk(public_jwk)
    return recipient["kid"], _import_checked(recipient)


def unseal(token: str, private_jwk: dict[str, Any]) -> Any:
    """Decrypt a sealed token with the recipient's private key and return the payload.

    Anything but our exact profile is refused before decryption is attempted; a token for
    another key, or with any bit changed, fails authentication. All of these raise SealError,
    with a message that never includes the plaintext. An unusable private key is InvalidKey.

    This proves nothing about who sealed it: a signed delivery comes back as the hub's JWS,
    unchecked. A recipient opens deliveries with `open_verified`.
    """
    cty, plaintext = _decrypt(token, private_jwk)
    if cty == NESTED_CONTENT_TYPE:
        return plaintext.decode("ascii", errors="replace")
    try:
        return json.loads(plaintext)
    except ValueError as exc:
        raise SealError("sealed payload is not JSON") from exc


@dataclass(frozen=True)
class OpenedDelivery:
    """A delivery that the hub signed, opened: its disclosures and what the hub said of them."""

    disclosures: Any = field(repr=False)
    claims: dict[str, Any] = field(repr=False)
    platform_signed: bool


def open_verified(
    token: str,
    private_jwk: dict[str, Any],
    hub_jwks: dict[str, Any],
    *,
    delivery_id: str | None = None,
) -> OpenedDelivery:
    """Decrypt a delivery and check that the hub signed it (a key of `hub_jwks`) for this very
    delivery, and, when the platform signed its disclosures, that the platform's signature
    covers exactly the disclosures delivered. Anything else raises SealError."""
    cty, plaintext = _decrypt(token, private_jwk)
    if cty != NESTED_CONTENT_TYPE:
        raise SealError("delivery is not signed by the hub (refused: anyone can seal a JWE)")
    try:
        claims = evidence.verify(
            plaintext.decode("ascii"), evidence.keys_by_kid(hub_jwks), typ=evidence.DELIVERY_TYP
        )
    except (evidence.VerificationFailed, UnicodeDecodeError) as exc:
        raise SealError(f"hub signature does not verify: {exc}") from exc
    if delivery_id is not None and claims.get("delivery_id") != str(delivery_id):
        raise SealError("the hub signed this payload for another delivery")
    signed = claims.get("platform_signature")
    if signed is not None:
        try:
            platform_key = evidence.import_public(claims.get("platform_jwk") or {})
            kid = str(claims["platform_jwk"].get("kid"))
            said = evidence.verify(signed, {kid: platform_key}, typ=evidence.PLATFORM_TYP)
        except (evidence.VerificationFailed, AttributeError) as exc:
            raise SealError(f"platform signature does not verify: {exc}") from exc
        if said.get("disclosures") != claims.get("disclosures"):
            raise SealError("the platform did not sign these disclosures")
    return OpenedDelivery(
        disclosures=claims.get("disclosures"), claims=claims, platform_signed=signed is not None
    )


def sealed_for(token: str) -> str | None:
    """The kid a token names as its recipient (unauthenticated: to pick a key, nothing more)."""
    try:
        segment = token.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError, AttributeError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def _decrypt(token: str, private_jwk: dict[str, Any]) -> tuple[str, bytes]:
    key = _import_private(private_jwk)
    cty = _check_header(token, kid=key.thumbprint())
    try:
        plaintext = jwe.decrypt_compact(token, key, registry=_registry()).plaintext
    except (JoseError, InvalidTag, ValueError, TypeError, KeyError) as exc:
        raise SealError(f"cannot open sealed token: {type(exc).__name__}") from exc
    if plaintext is None:
        raise SealError("cannot open sealed token: no plaintext")
    return cty, plaintext


def _check_header(token: str, *, kid: str) -> str:
    if not isinstance(token, str) or token.count(".") != 4:
        raise SealError("not a compact JWE (expected five dot-separated parts)")
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise SealError("unreadable JWE header") from exc
    if not isinstance(header, dict):
        raise SealError("JWE header is not a JSON object")
    if header.get("alg") != ALG or header.get("enc") != ENC:
        raise SealError(
            f"unexpected algorithm alg={header.get('alg')!r} enc={header.get('enc')!r}; "
            f"only {ALG} with {ENC} is accepted"
        )
    unexpected = sorted(set(header) - _ALLOWED_HEADER)
    if unexpected:
        raise SealError(f"unexpected JWE header members: {', '.join(unexpected)}")
    cty = header.get("cty", CONTENT_TYPE)
    if cty not in (CONTENT_TYPE, NESTED_CONTENT_TYPE):
        raise SealError(f"unexpected content type {header.get('cty')!r}")
    if header.get("kid") != kid:
        raise SealError("token was sealed for a different key (kid does not match)")
    return str(cty)


def _import_checked(jwk: dict[str, Any]) -> ECKey | OKPKey:
    """Import an EC P-256 or OKP X25519 JWK meant for encryption, or raise InvalidKey."""
    kty = jwk.get("kty")
    if kty == "oct":
        raise InvalidKey(
            "symmetric keys (kty 'oct') cannot be used: a shared secret is not a public key"
        )
    if kty not in _SUPPORTED_CURVES:
        raise InvalidKey(f"unsupported key type {kty!r}; use kty 'EC' (P-256) or 'OKP' (X25519)")
    crv = jwk.get("crv")
    if crv != _SUPPORTED_CURVES[kty]:
        expected = _SUPPORTED_CURVES[kty]
        raise InvalidKey(f"unsupported curve {crv!r} for kty {kty!r}; use {expected!r}")
    if jwk.get("use", "enc") != "enc":
        raise InvalidKey(f"key is meant for use {jwk.get('use')!r}, not encryption ('enc')")
    if jwk.get("alg", ALG) != ALG:
        raise InvalidKey(f"key is bound to alg {jwk.get('alg')!r}; sealing uses {ALG}")
    ops = jwk.get("key_ops")
    if ops is not None and not (isinstance(ops, list) and _ENCRYPTION_OPS & set(ops)):
        raise InvalidKey(f"key_ops {ops!r} do not allow key agreement")
    members = {name: jwk[name] for name in ("kty", "crv", "x", "y", "d") if name in jwk}
    try:
        if kty == "EC":
            return ECKey.import_key(members)
        return OKPKey.import_key(members)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        # cryptography rejects points off the curve here (invalid-curve attacks).
        raise InvalidKey(f"malformed {kty} key: {exc}") from exc


def _import_private(private_jwk: dict[str, Any]) -> ECKey | OKPKey:
    if not isinstance(private_jwk, dict) or "d" not in private_jwk:
        raise InvalidKey("a private JWK (with 'd') is required")
    key = _import_checked(private_jwk)
    if not key.is_private:
        raise InvalidKey("a private JWK (with 'd') is required")
    # cryptography checks that an EC 'd' matches x and y; for X25519 only 'd' is read, so a
    # stale 'x' would silently give the wrong kid. Refuse the mismatch instead.
    if isinstance(key, OKPKey) and "x" in private_jwk:
        x = base64.urlsafe_b64encode(key.public_key.public_bytes_raw()).rstrip(b"=").decode()
        if x != private_jwk["x"]:
            raise InvalidKey("private JWK: 'x' does not belong to 'd'")
    return key
