"""Resource-server validation of RFC 9068 JWT access tokens.

Every API trusts exactly one issuer. Its keys come only from the JWKS that the issuer's own
metadata names; nothing a token says about keys (`jwk`, `jku`, `x5u`, `x5c`) is ever used, and
only the asymmetric algorithms we allow are accepted, so key-confusion and `alg: none` tokens
fail before any signature check.

A token that passed every check is remembered, by its SHA-256, until its own `exp` (never
longer), so a client reusing one token pays the signature check once rather than per request
(the ES256 verify was 9% of intake's CPU). A remembered token is only accepted while the JWKS
still holds the very key object that verified it: a rotated-out or replaced key, seen at the
next JWKS refresh, sends the token through full validation again. The cache is bounded; the
oldest entry leaves first.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc import jws
from joserfc.errors import ExpiredTokenError, JoseError, UnsupportedAlgorithmError
from joserfc.jwk import JWKRegistry, Key
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry

from shared.auth.principal import Principal
from shared.errors import Unauthorized
from shared.settings import OAuthSettings

logger = logging.getLogger(__name__)

# ES256 and EdDSA per the design; Ed25519 is EdDSA's fully specified name (RFC 9864).
ALLOWED_ALGORITHMS = frozenset({"ES256", "EdDSA", "Ed25519"})
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
EMBEDDED_KEY_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c"})
MAX_TOKEN_LENGTH = 8192
UNKNOWN_KID_REFETCH_SECONDS = 10.0
INVALID = "The access token is not valid"
# Access tokens are short-lived by design; a longer one is a forged or misconfigured issuer.
DEFAULT_MAX_LIFETIME_SECONDS = 3600
# A few thousand distinct live tokens per process: far more clients than a deployment has.
DEFAULT_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class _Verified:
    """What a fully validated token established, and what must still hold to reuse it."""

    principal: Principal
    kid: str
    key: Key
    exp: float


class _AllowListRegistry(JWSRegistry):
    """Knows only our algorithms, whatever the library would otherwise recommend."""

    def get_alg(self, name: str) -> Any:
        if name not in ALLOWED_ALGORITHMS or name not in self.algorithms:
            raise UnsupportedAlgorithmError(f"Algorithm '{name}' is not allowed")
        return self.algorithms[name]


def metadata_urls(issuer: str) -> list[str]:
    """Where an issuer publishes its metadata: RFC 8414 first, then the OIDC location."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    base = issuer.rstrip("/")
    urls = [f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{path}"]
    if path:  # Keycloak serves RFC 8414 metadata under the realm path too
        urls.append(f"{base}/.well-known/oauth-authorization-server")
    urls.append(f"{base}/.well-known/openid-configuration")
    return urls


class TokenValidator:
    """Validates bearer access tokens for one issuer and audience; share one per process.

    The validator owns the HTTP client it is given and closes it in `aclose`.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: int,
        jwks_ttl_seconds: int,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.monotonic,
        max_lifetime_seconds: int = DEFAULT_MAX_LIFETIME_SECONDS,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self._issuer = issuer
        self._cache_size = cache_size
        self._verified: dict[bytes, _Verified] = {}
        self._max_lifetime = max_lifetime_seconds
        self._ttl = jwks_ttl_seconds
        self._http = http
        self._clock = clock
        self._registry = _AllowListRegistry()
        # Stateless between calls: exp, nbf and iat are checked against the clock at each one.
        self._claims = JWTClaimsRegistry(
            leeway=leeway_seconds,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
            jti={"essential": True},
            client_id={"essential": True},
        )
        self._jwks_uri: str | None = None
        self._keys: dict[str, Key] = {}
        self._expires_at = -math.inf
        self._attempted_at = -math.inf
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: OAuthSettings, *, http: httpx.AsyncClient) -> TokenValidator:
        """The validator a service builds in its lifespan; it takes ownership of `http`."""
        return cls(
            issuer=settings.oauth_issuer,
            audience=settings.oauth_audience,
            leeway_seconds=settings.oauth_leeway_seconds,
            jwks_ttl_seconds=settings.oauth_jwks_ttl_seconds,
            http=http,
            max_lifetime_seconds=settings.oauth_max_token_lifetime_seconds,
            cache_size=settings.oauth_token_cache_size,
        )

    async def aclose(self) -> None:
        """Close the HTTP client the validator was given; call once at shutdown."""
        await self._http.aclose()

    async def validate(self, token: str) -> Principal:
        """Return the caller behind `token`, or raise `Unauthorized` with a safe detail."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        known = self._verified.get(digest)
        if known is not None:
            # The JWKS is consulted (and refreshed on its TTL) exactly as for a new token.
            if time.time() < known.exp and await self._key_for(known.kid) is known.key:
                return known.principal
            del self._verified[digest]
        signed = self._parse(token)
        header = signed.headers()
        kid = header["kid"]
        key = await self._key_for(kid)
        try:
            if not jws.validate_compact(signed, key, registry=self._registry):
                raise Unauthorized(INVALID)
            claims = json.loads(signed.payload)
        except (JoseError, ValueError) as exc:
            logger.info("access token refused: %s", type(exc).__name__)
            raise Unauthorized(INVALID) from None
        if not isinstance(claims, dict):
            raise Unauthorized(INVALID)
        principal = self._principal(claims)
        self._remember(digest, _Verified(principal, kid, key, float(claims["exp"])))
        return principal

    def _remember(self, digest: bytes, verified: _Verified) -> None:
        """Keep a validated token until its exp; inside the leeway it is never kept."""
        if self._cache_size <= 0 or time.time() >= verified.exp:
            return
        while len(self._verified) >= self._cache_size:
            del self._verified[next(iter(self._verified))]
        self._verified[digest] = verified

    def _parse(self, token: str) -> jws.CompactSignature:
        """Check the header before any key is looked up: type, algorithm, no embedded keys."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise Unauthorized(INVALID)
        try:
            signed = jws.extract_compact(token.encode("ascii"), registry=self._registry)
            header = signed.headers()
        except (JoseError, ValueError) as exc:
            logger.info("access token refused: %s", type(exc).__name__)
            raise Unauthorized(INVALID) from None
        typ = header.get("typ")
        reason = None
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            reason = "algorithm not allowed"
        elif not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            reason = "not an at+jwt access token"
        elif EMBEDDED_KEY_HEADERS.intersection(header):
            reason = "embedded key reference"
        elif "crit" in header:
            reason = "critical header extension"
        elif not isinstance(header.get("kid"), str):
            reason = "missing kid"
        if reason:
            logger.info("access token refused: %s", reason)
            raise Unauthorized(INVALID)
        return signed

    def _principal(self, claims: dict[str, Any]) -> Principal:
        try:
            self._claims.validate(claims)
        except ExpiredTokenError:
            raise Unauthorized("The access token has expired") from None
        except JoseError as exc:
            logger.info("access token refused: %s", exc.error)
            raise Unauthorized(INVALID) from None
        lifetime = claims["exp"] - claims["iat"]
        if lifetime > self._max_lifetime:
            # A stolen signing key or a misconfigured issuer must not mint near-permanent access.
            logger.info("access token refused: lifetime %ss over the maximum", lifetime)
            raise Unauthorized(INVALID)
        scope = claims.get("scope", "")
        optional = [claims.get("jurisdiction"), claims.get("platform")]
        if not isinstance(claims["client_id"], str) or not isinstance(scope, str):
            raise Unauthorized(INVALID)
        if any(value is not None and not isinstance(value, str) for value in optional):
            raise Unauthorized(INVALID)
        return Principal(
            subject=claims["sub"],
            client_id=claims["client_id"],
            scopes=frozenset(scope.split()),
            jurisdiction=claims.get("jurisdiction"),
            platform=claims.get("platform"),
            token_id=claims["jti"],
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )

    async def _key_for(self, kid: str) -> Key:
        """The issuer's key for `kid`; an unknown kid refetches at most once per interval."""
        if self._clock() >= self._expires_at:
            await self._refresh()
        key = self._keys.get(kid)
        if key is None:
            await self._refresh()
            key = self._keys.get(kid)
        if key is None:
            logger.info("access token refused: unknown kid")
            raise Unauthorized(INVALID)
        return key

    async def _refresh(self) -> None:
        """Refetch the JWKS unless someone tried within the refetch interval.

        Failed attempts count too, so neither a dead issuer nor a stream of tokens with made-up
        kids turns every request into an outbound call; the keys we have stay in use meanwhile.
        """
        async with self._lock:
            if self._clock() - self._attempted_at < UNKNOWN_KID_REFETCH_SECONDS:
                return
            self._attempted_at = self._clock()
            try:
                keys = await self._fetch_keys()
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                logger.warning("JWKS refresh failed: %s", type(exc).__name__)
                self._jwks_uri = None
                if not self._keys:
                    raise Unauthorized("The token issuer's keys are unavailable") from None
                return
            self._keys = keys
            self._expires_at = self._clock() + self._ttl

    async def _fetch_keys(self) -> dict[str, Key]:
        if self._jwks_uri is None:
            self._jwks_uri = await self._discover()
        response = await self._http.get(self._jwks_uri)
        response.raise_for_status()
        return _signing_keys(response.json())

    async def _discover(self) -> str:
        """Find `jwks_uri` in the issuer's metadata, which must name the same issuer."""
        for url in metadata_urls(self._issuer):
            response = await self._http.get(url)
            if response.status_code == httpx.codes.NOT_FOUND:
                continue
            response.raise_for_status()
            metadata = response.json()
            if metadata.get("issuer") != self._issuer:
                raise ValueError("issuer metadata names another issuer")
            jwks_uri = metadata["jwks_uri"]
            if not isinstance(jwks_uri, str):
                raise TypeError("jwks_uri is not a string")
            return jwks_uri
        raise ValueError("issuer publishes no metadata")


def _signing_keys(document: Any) -> dict[str, Key]:
    """Public signing keys by kid; keys we cannot use are skipped, not fatal."""
    keys: dict[str, Key] = {}
    for data in document["keys"]:
        if not isinstance(data, dict) or data.get("use", "sig") != "sig":
            continue
        try:
            key = JWKRegistry.import_key(data)
        except (JoseError, ValueError, TypeError):
            continue
        if isinstance(key.kid, str):
            keys[key.kid] = key
    return keys
