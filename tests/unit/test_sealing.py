"""Sealed disclosures open only for their recipient, only in our profile, and never when altered."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from joserfc import jwe
from joserfc.jwk import ECKey, OctKey, RSAKey

from shared import sealing
from shared.sealing import InvalidKey, KeyPair, SealError

DISCLOSURE: dict[str, Any] = {
    "selector": "@night_owl",
    "category": "subscriber",
    "records": [{"ip": "203.0.113.77", "phone": "+33612345678", "name": "Zoë Ångström"}],
}


def _b64d(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _header(token: str) -> dict[str, Any]:
    header: dict[str, Any] = json.loads(_b64d(token.split(".")[0]))
    return header


@pytest.fixture(scope="module")
def alice() -> KeyPair:
    return sealing.generate_keypair()


@pytest.fixture(scope="module")
def bob() -> KeyPair:
    return sealing.generate_keypair()


@pytest.mark.parametrize("curve", ["P-256", "X25519"])
def test_round_trip(curve: Any) -> None:
    pair = sealing.generate_keypair(curve=curve)
    token = sealing.seal(DISCLOSURE, pair.public_jwk)
    assert sealing.unseal(token, pair.private_jwk) == DISCLOSURE


def test_payload_over_joserfc_default_limit_round_trips(alice: KeyPair) -> None:
    # joserfc refuses ciphertexts over 64 KiB by default; traffic data is often larger.
    payload = {"records": [{"ip": f"198.51.100.{i % 256}", "seen": i} for i in range(5000)]}
    assert len(json.dumps(payload)) > 100_000
    assert sealing.unseal(sealing.seal(payload, alice.public_jwk), alice.private_jwk) == payload


def test_payload_over_limit_is_refused(alice: KeyPair, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sealing, "MAX_PAYLOAD_BYTES", 10)
    with pytest.raises(SealError, match="limit"):
        sealing.seal(DISCLOSURE, alice.public_jwk)


def test_header_carries_profile_and_kid(alice: KeyPair) -> None:
    header = _header(sealing.seal(DISCLOSURE, alice.public_jwk))
    assert header["alg"] == "ECDH-ES+A256KW"
    assert header["enc"] == "A256GCM"
    assert header["cty"] == "application/json"
    assert header["kid"] == alice.kid == ECKey.import_key(alice.public_jwk).thumbprint()
    assert set(header) == {"alg", "enc", "kid", "cty", "epk"}


def test_token_does_not_contain_plaintext(alice: KeyPair) -> None:
    token = sealing.seal(DISCLOSURE, alice.public_jwk)
    raw = b"".join(_b64d(part) for part in token.split("."))
    for secret in ("203.0.113.77", "+33612345678", "night_owl"):
        assert secret not in token
        assert secret.encode() not in raw
        assert _b64e(secret.encode())[:-2] not in token


def test_sealing_twice_gives_different_tokens(alice: KeyPair) -> None:
    assert sealing.seal(DISCLOSURE, alice.public_jwk) != sealing.seal(DISCLOSURE, alice.public_jwk)


def test_other_recipient_cannot_open(alice: KeyPair, bob: KeyPair) -> None:
    token = sealing.seal(DISCLOSURE, alice.public_jwk)
    with pytest.raises(SealError, match="different key"):
        sealing.unseal(token, bob.private_jwk)


def test_other_recipient_cannot_open_even_with_its_kid(alice: KeyPair, bob: KeyPair) -> None:
    # The kid check is a courtesy; the cryptography must refuse on its own.
    header = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "kid": bob.kid, "cty": "application/json"}
    token = jwe.encrypt_compact(header, b"{}", ECKey.import_key(alice.public_jwk))
    with pytest.raises(SealError, match="cannot open"):
        sealing.unseal(token, bob.private_jwk)


@pytest.mark.parametrize("part", range(5))
def test_tampering_any_part_fails(alice: KeyPair, part: int) -> None:
    parts = sealing.seal(DISCLOSURE, alice.public_jwk).split(".")
    raw = bytearray(_b64d(parts[part]))
    for position in (0, len(raw) // 2, len(raw) - 1):
        tampered = raw.copy()
        tampered[position] ^= 0x01
        forged = [*parts[:part], _b64e(bytes(tampered)), *parts[part + 1 :]]
        with pytest.raises(SealError):
            sealing.unseal(".".join(forged), alice.private_jwk)


def test_reencoded_header_fails(alice: KeyPair) -> None:
    # Same members, different bytes: the header is authenticated as sent, not as parsed.
    parts = sealing.seal(DISCLOSURE, alice.public_jwk).split(".")
    header = _header(".".join(parts))
    reordered = _b64e(json.dumps(dict(reversed(header.items()))).encode())
    with pytest.raises(SealError, match="cannot open"):
        sealing.unseal(".".join([reordered, *parts[1:]]), alice.private_jwk)


@pytest.mark.parametrize("token", ["", "a.b.c.d", "a.b.c.d.e", "!!!.b.c.d.e", "W10.b.c.d.e"])
def test_garbage_is_refused(alice: KeyPair, token: str) -> None:
    with pytest.raises(SealError):
        sealing.unseal(token, alice.private_jwk)


@pytest.fixture(scope="module")
def off_profile(alice: KeyPair) -> dict[str, str]:
    alice_public = ECKey.import_key(alice.public_jwk)
    plain = b'{"ip": "203.0.113.77"}'
    oct_key = OctKey.generate_key(256)
    rsa_key = RSAKey.generate_key(2048)
    base = {"kid": alice.kid, "cty": "application/json"}

    def make(alg: str, enc: str, key: Any) -> str:
        header = {**base, "alg": alg, "enc": enc}
        return jwe.encrypt_compact(header, plain, key, algorithms=[alg, enc])

    return {
        "dir": make("dir", "A256GCM", oct_key),
        "RSA-OAEP": make("RSA-OAEP", "A256GCM", rsa_key),
        "ECDH-ES direct": make("ECDH-ES", "A256GCM", alice_public),
        "ECDH-ES+A128KW": make("ECDH-ES+A128KW", "A256GCM", alice_public),
        "A128GCM": make("ECDH-ES+A256KW", "A128GCM", alice_public),
        "A256CBC-HS512": make("ECDH-ES+A256KW", "A256CBC-HS512", alice_public),
    }


@pytest.mark.parametrize(
    "name",
    ["dir", "RSA-OAEP", "ECDH-ES direct", "ECDH-ES+A128KW", "A128GCM", "A256CBC-HS512"],
)
def test_off_profile_algorithms_are_refused(
    alice: KeyPair, off_profile: dict[str, str], name: str
) -> None:
    with pytest.raises(SealError, match="unexpected algorithm"):
        sealing.unseal(off_profile[name], alice.private_jwk)


def test_compressed_token_is_refused(alice: KeyPair) -> None:
    header = {
        "alg": "ECDH-ES+A256KW",
        "enc": "A256GCM",
        "zip": "DEF",
        "kid": alice.kid,
        "cty": "application/json",
    }
    alg_allow = ["ECDH-ES+A256KW", "A256GCM", "DEF"]
    token = jwe.encrypt_compact(header, b"{}", ECKey.import_key(alice.public_jwk), alg_allow)
    with pytest.raises(SealError, match="zip"):
        sealing.unseal(token, alice.private_jwk)


def test_validate_normalises_and_sets_thumbprint_kid(alice: KeyPair) -> None:
    registered = {**alice.public_jwk, "kid": "fr-2024", "x5u": "https://example.invalid/k"}
    assert sealing.validate_public_jwk(registered) == alice.public_jwk
    assert alice.public_jwk == {
        "kty": "EC",
        "crv": "P-256",
        "x": alice.public_jwk["x"],
        "y": alice.public_jwk["y"],
        "use": "enc",
        "alg": "ECDH-ES+A256KW",
        "kid": alice.kid,
    }


def test_public_from_private(alice: KeyPair) -> None:
    assert sealing.public_from_private(alice.private_jwk) == alice.public_jwk
    pair = sealing.generate_keypair(curve="X25519")
    assert sealing.public_from_private(pair.private_jwk) == pair.public_jwk
    assert "d" not in pair.public_jwk


def test_keypair_repr_hides_private_key(alice: KeyPair) -> None:
    assert alice.private_jwk["d"] not in repr(alice)


@pytest.fixture(scope="module")
def bad_keys(alice: KeyPair) -> dict[str, tuple[Any, str]]:
    public = alice.public_jwk
    y = bytearray(_b64d(public["y"]))
    y[-1] ^= 0x01
    return {
        "private": (alice.private_jwk, "private key material"),
        "oct": (OctKey.generate_key(256).as_dict(private=True), "private key material"),
        "oct without k": ({"kty": "oct"}, "symmetric"),
        "RSA": (dict(RSAKey.generate_key(2048).as_dict()), "unsupported key type"),
        "P-384": (dict(ECKey.generate_key("P-384").as_dict()), "unsupported curve"),
        "Ed25519": ({"kty": "OKP", "crv": "Ed25519", "x": public["x"]}, "unsupported curve"),
        "signing": ({**public, "use": "sig"}, "not encryption"),
        "other alg": ({**public, "alg": "RSA-OAEP"}, "bound to alg"),
        "key_ops": ({**public, "key_ops": ["verify"]}, "key_ops"),
        "off-curve": ({**public, "y": _b64e(bytes(y))}, "malformed"),
        "no x": ({k: v for k, v in public.items() if k != "x"}, "malformed"),
        "not a dict": ("{}", "JSON object"),
    }


@pytest.mark.parametrize(
    "name",
    [
        "private",
        "oct",
        "oct without k",
        "RSA",
        "P-384",
        "Ed25519",
        "signing",
        "other alg",
        "key_ops",
        "off-curve",
        "no x",
        "not a dict",
    ],
)
def test_validate_rejects_bad_keys(bad_keys: dict[str, tuple[Any, str]], name: str) -> None:
    jwk, message = bad_keys[name]
    with pytest.raises(InvalidKey, match=message):
        sealing.validate_public_jwk(jwk)


def test_seal_refuses_bad_key(alice: KeyPair) -> None:
    with pytest.raises(InvalidKey):
        sealing.seal(DISCLOSURE, alice.private_jwk)
    with pytest.raises(InvalidKey):
        sealing.unseal(sealing.seal(DISCLOSURE, alice.public_jwk), alice.public_jwk)


def test_x25519_private_key_with_foreign_x_is_refused() -> None:
    one, other = (sealing.generate_keypair(curve="X25519") for _ in range(2))
    with pytest.raises(InvalidKey, match="does not belong"):
        sealing.public_from_private({**one.private_jwk, "x": other.public_jwk["x"]})


def test_payload_must_be_json(alice: KeyPair) -> None:
    with pytest.raises(TypeError):
        sealing.seal({"at": object()}, alice.public_jwk)
    with pytest.raises(ValueError, match="Out of range"):
        sealing.seal({"n": float("nan")}, alice.public_jwk)
