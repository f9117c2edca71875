"""Real ES256 access tokens for API tests, signed by a key the tests hold.

The key's issuer metadata and JWKS are served through an httpx.MockTransport, so the services
validate these tokens through their real TokenValidator and HTTP client stack.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

from shared.auth.scopes import Scope

ISSUER = "https://issuer.caseshare.test"
AUDIENCE = "caseshare"
AUTHORITY_SCOPES = (Scope.CASES_WRITE, Scope.CASES_READ, Scope.INBOX_READ)


def _new_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"}, auto_kid=True)


@dataclass
class TokenMint:
    """An issuer in miniature: signs access tokens and publishes the key that checks them."""

    issuer: str = ISSUER
    key: ECKey = field(default_factory=_new_key)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json={"issuer": self.issuer, "jwks_uri": f"{ISSUER}/jwks"})
        if request.url.path == "/jwks":
            return httpx.Response(200, json={"keys": [self.key.as_dict(private=False)]})
        return httpx.Response(404)

    def http(self) -> httpx.AsyncClient:
        """A client for a service's token validator; the service's caller closes it."""
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    def token(
        self,
        client_id: str,
        scopes: tuple[str, ...],
        *,
        jurisdiction: str | None = None,
        platform: str | None = None,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": client_id,
            "client_id": client_id,
            "scope": " ".join(scopes),
            "jti": uuid.uuid4().hex,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        if jurisdiction is not None:
            claims["jurisdiction"] = jurisdiction
        if platform is not None:
            claims["platform"] = platform
        header = {"alg": "ES256", "typ": "at+jwt", "kid": self.key.kid}
        return jwt.encode(header, claims, self.key, algorithms=["ES256"], default_type=None)

    def jti(self, token: str) -> str:
        """The token id the services audit requests under."""
        claims = jwt.decode(token, self.key, algorithms=["ES256"]).claims
        return str(claims["jti"])

    def authority(self, code: str, scopes: tuple[str, ...] = AUTHORITY_SCOPES) -> str:
        return self.token(f"authority-{code.lower()}", scopes, jurisdiction=code)

    def platform(self, slug: str, scopes: tuple[str, ...] = (Scope.RESPONSES_WRITE,)) -> str:
        return self.token(f"platform-{slug}", scopes, platform=slug)

    def coordinator(self, scopes: tuple[str, ...] = (Scope.FANOUT_READ,)) -> str:
        return self.token("coordinator", scopes)

    def admin(self, scopes: tuple[str, ...] = (Scope.REGISTRY_ADMIN,)) -> str:
        return self.token("admin", scopes)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
