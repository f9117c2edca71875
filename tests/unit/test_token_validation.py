"""The attack matrix for access-token validation: every forged or stale token must be refused.

Keys are generated per test, and the issuer's metadata and JWKS are served through an
httpx.MockTransport, so the validator runs its real HTTP client stack in process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from shared.auth import Principal, TokenValidator
from shared.errors import Unauthorized

ISSUER = "https://issuer.example"
AUDIENCE = "caseshare"


@dataclass
class FakeIssuer:
    """Serves RFC 8414 metadata and a JWKS, counting how often the JWKS is fetched."""

    issuer: str = ISSUER
    published: list[Key] = field(default_factory=list)
    jwks_fetches: int = 0
    metadata_path: str = "/.well-known/oauth-authorization-server"

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.metadata_path:
            return httpx.Response(
                200, json={"issuer": self.issuer, "jwks_uri": "https://issuer.example/jwks"}
            )
        if request.url.path == "/jwks":
            self.jwks_fetches += 1
            return httpx.Response(
                200, json={"keys": [k.as_dict(private=False) for k in self.published]}
            )
        return httpx.Response(404)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "authority-fr",
        "client_id": "authority-fr",
        "scope": "cases:write cases:read",
        "jurisdiction": "FR",
        "jti": "token-1",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def sign(key: Key, payload: dict[str, Any], *, alg: str = "ES256", **header: Any) -> str:
    full = {"alg": alg, "typ": "at+jwt", "kid": key.kid, **header}
    full = {name: value for name, value in full.items() if value is not None}
    return jwt.encode(full, payload, key, algorithms=[alg], default_type=None)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], signer: Callable[[bytes], bytes]) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(signer(signing_input.encode()))}"


@pytest.fixture
def key() -> ECKey:
    return ECKey.generate_key("P-256", auto_kid=True)


@pytest.fixture
def issuer(key: ECKey) -> FakeIssuer:
    return FakeIssuer(published=[key])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_validator(issuer: FakeIssuer, clock: Clock) -> Callable[..., TokenValidator]:
    def make(issuer_url: str = ISSUER) -> TokenValidator:
        http = httpx.AsyncClient(transport=httpx.MockTransport(issuer.handle))
        return TokenValidator(
            issuer=issuer_url,
            audience=AUDIENCE,
            leeway_seconds=5,
            jwks_ttl_seconds=300,
            http=http,
            clock=clock,
        )

    return make


@pytest.fixture
async def validator(make_validator: Callable[..., TokenValidator]) -> Any:
    validator = make_validator()
    yield validator
    await validator.aclose()


async def test_valid_token_yields_the_principal(validator: TokenValidator, key: ECKey) -> None:
    payload = claims()
    principal = await validator.validate(sign(key, payload))
    assert principal == Principal(
        subject="authority-fr",
        client_id="authority-fr",
        scopes=frozenset({"cases:write", "cases:read"}),
        jurisdiction="FR",
        platform=None,
        token_id="token-1",
        expires_at=datetime.fromtimestamp(payload["exp"], UTC),
    )


@pytest.mark.parametrize("typ", ["at+JWT", "application/at+jwt"])
async def test_access_token_media_type_is_case_insensitive(
    validator: TokenValidator, key: ECKey, typ: str
) -> None:
    assert (await validator.validate(sign(key, claims(), typ=typ))).client_id == "authority-fr"


async def test_eddsa_is_accepted(validator: TokenValidator, issuer: FakeIssuer) -> None:
    ed_key = OKPKey.generate_key("Ed25519", auto_kid=True)
    issuer.published.append(ed_key)
    with warnings.catch_warnings():  # joserfc flags EdDSA as superseded; the design allows it
        warnings.simplefilter("ignore", SecurityWarning)
        token = sign(ed_key, claims(), alg="EdDSA")
    assert (await validator.validate(token)).subject == "authority-fr"


async def test_alg_none_is_refused(
    validator: TokenValidator, issuer: FakeIssuer, key: ECKey
) -> None:
    header = {"alg": "none", "typ": "at+jwt", "kid": key.kid}
    with pytest.raises(Unauthorized):
        await validator.validate(forge(header, claims(), lambda _data: b""))
    assert issuer.jwks_fetches == 0  # refused on its header, before any key is consulted


async def test_hs256_with_the_public_key_as_secret_is_refused(
    validator: TokenValidator, issuer: FakeIssuer, key: ECKey
) -> None:
    secret = key.as_pem(private=False)
    header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
    token = forge(header, claims(), lambda data: hmac.new(secret, data, hashlib.sha256).digest())
    with pytest.raises(Unauthorized):
        await validator.validate(token)
    assert issuer.jwks_fetches == 0


async def test_rs256_is_refused_even_from_a_published_key(
    validator: TokenValidator, issuer: FakeIssuer
) -> None:
    rsa_key = RSAKey.generate_key(2048, auto_kid=True)
    issuer.published.append(rsa_key)
    with pytest.raises(Unauthorized):
        await validator.validate(sign(rsa_key, claims(), alg="RS256"))


async def test_attacker_key_with_the_real_kid_is_refused(
    validator: TokenValidator, key: ECKey
) -> None:
    attacker = ECKey.generate_key("P-256")
    with pytest.raises(Unauthorized):
        await validator.validate(sign(attacker, claims(), kid=key.kid))


async def test_embedded_jwk_header_is_refused(
    validator: TokenValidator, issuer: FakeIssuer, key: ECKey
) -> None:
    attacker = ECKey.generate_key("P-256")
    token = sign(attacker, claims(), kid=key.kid, jwk=attacker.as_dict(private=False))
    with pytest.raises(Unauthorized):
        await validator.validate(token)
    assert issuer.jwks_fetches == 0


@pytest.mark.parametrize("member", ["jku", "x5u"])
async def test_key_url_headers_are_refused(
    validator: TokenValidator, issuer: FakeIssuer, key: ECKey, member: str
) -> None:
    with pytest.raises(Unauthorized):
        await validator.validate(sign(key, claims(), **{member: "https://attacker.example/k"}))
    assert issuer.jwks_fetches == 0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": int(time.time()) - 60}, "expired"),
        ({"aud": "someone-else"}, "wrong audience"),
        ({"iss": "https://issuer.example/other"}, "wrong issuer"),
        ({"nbf": int(time.time()) + 600}, "not yet valid"),
        ({"exp": None}, "no exp"),
        ({"iat": None}, "no iat"),
        ({"jti": None}, "no jti"),
        ({"client_id": None}, "no client_id"),
        ({"sub": None}, "no sub"),
    ],
)
async def test_bad_claims_are_refused(
    validator: TokenValidator, key: ECKey, overrides: dict[str, Any], reason: str
) -> None:
    with pytest.raises(Unauthorized):
        await validator.validate(sign(key, claims(**overrides)))


@pytest.mark.parametrize("typ", ["JWT", None])
async def test_a_token_that_is_not_an_access_token_is_refused(
    validator: TokenValidator, key: ECKey, typ: str | None
) -> None:
    with pytest.raises(Unauthorized):
        await validator.validate(sign(key, claims(), typ=typ))


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 9000])
async def test_garbage_is_refused(validator: TokenValidator, token: str) -> None:
    with pytest.raises(Unauthorized):
        await validator.validate(token)


async def test_rotated_out_key_is_refused_once_the_cache_expires(
    validator: TokenValidator, issuer: FakeIssuer, key: ECKey, clock: Clock
) -> None:
    token = sign(key, claims())
    await validator.validate(token)
    issuer.published = [ECKey.generate_key("P-256", auto_kid=True)]
    clock.now += 301
    with pytest.raises(Unauthorized):
        await validator.validate(token)


async def test_unknown_kid_refetch_is_throttled(
    validator: TokenValidator, issuer: FakeIssuer, clock: Clock
) -> None:
    stranger = ECKey.generate_key("P-256", auto_kid=True)
    token = sign(stranger, claims())
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await validator.validate(token)
    assert issuer.jwks_fetches == 1  # the first fetch already covered the refetch interval
    clock.now += 11
    with pytest.raises(Unauthorized):
        await validator.validate(token)
    assert issuer.jwks_fetches == 2


async def test_a_newly_published_key_is_picked_up_by_refetch(
    validator: TokenValidator, issuer: FakeIssuer, key: ECKey, clock: Clock
) -> None:
    await validator.validate(sign(key, claims()))
    successor = ECKey.generate_key("P-256", auto_kid=True)
    issuer.published.append(successor)
    clock.now += 11
    assert (await validator.validate(sign(successor, claims()))).client_id == "authority-fr"
    assert issuer.jwks_fetches == 2


async def test_openid_configuration_is_the_fallback_for_keycloak(
    make_validator: Callable[..., TokenValidator], issuer: FakeIssuer, key: ECKey
) -> None:
    realm = "https://issuer.example/realms/caseshare"
    issuer.issuer = realm
    issuer.metadata_path = "/realms/caseshare/.well-known/openid-configuration"
    validator = make_validator(realm)
    try:
        principal = await validator.validate(sign(key, claims(iss=realm)))
    finally:
        await validator.aclose()
    assert principal.subject == "authority-fr"


async def test_metadata_naming_another_issuer_is_not_trusted(
    validator: TokenValidator, issuer: FakeIssuer, key: ECKey
) -> None:
    issuer.issuer = "https://impostor.example"
    with pytest.raises(Unauthorized):
        await validator.validate(sign(key, claims()))


# --- the cache of validated tokens -------------------------------------------------------


@pytest.fixture
def verifies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts signature checks, so a test can tell a cached answer from a full validation."""
    from shared.auth import validation

    calls: list[int] = []
    real = validation.jws.validate_compact

    def counting(*args: Any, **kwargs: Any) -> bool:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(validation.jws, "validate_compact", counting)
    return calls


async def test_a_reused_token_is_verified_once(
    validator: TokenValidator, key: ECKey, verifies: list[int]
) -> None:
    token = sign(key, claims())
    first = await validator.validate(token)
    for _ in range(3):
        assert await validator.validate(token) == first
    assert len(verifies) == 1


async def test_a_cached_token_still_expires(
    validator: TokenValidator, key: ECKey, verifies: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = claims()
    token = sign(key, payload)
    await validator.validate(token)
    # Inside the 5 s leeway the token is still good, but the answer is not the cache's.
    monkeypatch.setattr(time, "time", lambda: payload["exp"] + 1.0)
    await validator.validate(token)
    await validator.validate(token)
    assert len(verifies) == 3  # past exp, nothing is remembered: every call verifies
    monkeypatch.setattr(time, "time", lambda: payload["exp"] + 60.0)
    with pytest.raises(Unauthorized, match="expired"):
        await validator.validate(token)


async def test_a_cached_token_dies_with_its_key(
    validator: TokenValidator, issuer: FakeIssuer, key: ECKey, clock: Clock
) -> None:
    token = sign(key, claims())
    await validator.validate(token)
    issuer.published = [ECKey.generate_key("P-256", auto_kid=True)]
    clock.now += 301  # the JWKS TTL: the next call refetches, as for an uncached token
    with pytest.raises(Unauthorized):
        await validator.validate(token)


async def test_a_cached_token_is_rechecked_when_its_kid_gets_other_key_material(
    validator: TokenValidator, issuer: FakeIssuer, key: ECKey, clock: Clock, verifies: list[int]
) -> None:
    token = sign(key, claims())
    await validator.validate(token)
    replacement = ECKey.generate_key("P-256", parameters={"kid": key.kid})
    issuer.published = [replacement]
    await validator.validate(token)  # the JWKS is still within its TTL: same key, cached
    assert len(verifies) == 1
    clock.now += 301
    with pytest.raises(Unauthorized):
        await validator.validate(token)
    assert len(verifies) == 2  # the new key under the old kid verified it, and refused it


async def test_the_cache_is_bounded(
    issuer: FakeIssuer, key: ECKey, clock: Clock, verifies: list[int]
) -> None:
    validator = TokenValidator(
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway_seconds=5,
        jwks_ttl_seconds=300,
        http=httpx.AsyncClient(transport=httpx.MockTransport(issuer.handle)),
        clock=clock,
        cache_size=2,
    )
    try:
        tokens = [sign(key, claims(jti=f"token-{n}")) for n in range(3)]
        for token in tokens:
            await validator.validate(token)
        assert len(validator._verified) == 2
        await validator.validate(tokens[2])  # the newest is kept
        assert len(verifies) == 3
        await validator.validate(tokens[0])  # the oldest was let go: verified again
        assert len(verifies) == 4
        assert len(validator._verified) == 2
    finally:
        await validator.aclose()


async def test_a_cache_of_size_zero_verifies_every_call(
    issuer: FakeIssuer, key: ECKey, clock: Clock, verifies: list[int]
) -> None:
    validator = TokenValidator(
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway_seconds=5,
        jwks_ttl_seconds=300,
        http=httpx.AsyncClient(transport=httpx.MockTransport(issuer.handle)),
        clock=clock,
        cache_size=0,
    )
    try:
        token = sign(key, claims())
        await validator.validate(token)
        await validator.validate(token)
    finally:
        await validator.aclose()
    assert len(verifies) == 2


async def test_a_refused_token_is_not_remembered(
    validator: TokenValidator, key: ECKey, verifies: list[int]
) -> None:
    token = sign(key, claims(aud="someone-else"))
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await validator.validate(token)
    assert len(verifies) == 2
    assert not validator._verified
