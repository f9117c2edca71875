"""authlib's AuthorizationServer wired into Starlette: client credentials, RFC 9068 tokens.

Public clients (the dashboard) use the authorization code grant instead; its pieces live in
`services.issuer.authorize`, and a client's kind decides which grant it may use.

authlib is synchronous, so `service.issue_token` runs it in a worker thread; the hooks below reach
the request's database session through `RequestScope`, which hops back onto the event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import anyio.from_thread
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidClientError,
    JsonPayload,
    JsonRequest,
    OAuth2Error,
    OAuth2Request,
    scope_to_list,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.issuer import clients, repository
from services.issuer.keys import ALGORITHM
from services.issuer.models import ClientKind, OAuthClient
from services.issuer.settings import IssuerSettings
from shared.auth.scopes import Scope
from shared.ratelimit import RateLimiter

logger = logging.getLogger(__name__)

AUTH_METHODS = ("client_secret_basic", "private_key_jwt")
ASSERTION_ALGORITHMS = ("ES256", "Ed25519", "PS256", "RS256")
MAX_ASSERTION_LIFETIME_SECONDS = 600
ASSERTION_LEEWAY_SECONDS = 30
# authlib's words for an unknown client; a client with no registered keys gets the same.
UNKNOWN_CLIENT = "The client does not exist on this server."


@dataclass(frozen=True)
class RequestScope:
    """What one token request may touch: its transaction and the key to sign with."""

    session: AsyncSession
    signing_key: ECKey
    # Spent once per authenticated client, so only its own token requests can drain it.
    client_limiter: RateLimiter | None = None

    def load_client(self, client_id: str) -> RegisteredClient | None:
        row = anyio.from_thread.run(_get_client, self.session, client_id)
        return RegisteredClient.from_row(row) if row else None

    def record_assertion(self, client_id: str, jti: str, expires_at: datetime) -> bool:
        return anyio.from_thread.run(_record_jti, self.session, client_id, jti, expires_at)


async def _get_client(session: AsyncSession, client_id: str) -> OAuthClient | None:
    return await repository.get_client(session, client_id=client_id)


async def _record_jti(session: AsyncSession, client_id: str, jti: str, until: datetime) -> bool:
    return await repository.record_assertion_jti(
        session, client_id=client_id, jti=jti, expires_at=until
    )


request_scope: ContextVar[RequestScope] = ContextVar("issuer_request_scope")


@dataclass(frozen=True)
class RegisteredClient(ClientMixin):  # type: ignore[misc]
    """authlib's view of a registered client, detached from the ORM session."""

    client_id: str
    secret_hash: str | None = field(repr=False)  # authlib logs clients with %r
    jwks: dict[str, Any] | None = field(repr=False)
    allowed_scopes: tuple[str, ...]
    jurisdiction: str | None
    platform: str | None
    kind: str = ClientKind.COORDINATOR
    redirect_uris: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: OAuthClient) -> RegisteredClient:
        return cls(
            client_id=row.client_id,
            secret_hash=row.secret_hash,
            jwks=row.jwks,
            allowed_scopes=tuple(row.allowed_scopes),
            jurisdiction=row.jurisdiction,
            platform=row.platform,
            kind=row.kind,
            redirect_uris=tuple(row.redirect_uris),
        )

    @property
    def is_public(self) -> bool:
        return self.kind == ClientKind.PUBLIC

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """All allowed scopes when none are asked for; None (invalid_scope) on any extra."""
        requested = scope_to_list(scope) or list(self.allowed_scopes)
        if not set(requested) <= set(self.allowed_scopes):
            return None
        return " ".join(dict.fromkeys(requested))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact string match only (RFC 9700 section 2.1)."""
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret_hash is not None and clients.verify_secret(
            client_secret, self.secret_hash
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint != "token":
            return False
        if self.is_public:
            return method == "none"
        if method == "client_secret_basic":
            return self.secret_hash is not None
        return method == "private_key_jwt" and self.jwks is not None

    def check_response_type(self, response_type: str) -> bool:
        return self.is_public and response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if self.is_public:
            return grant_type == "authorization_code"
        return grant_type == "client_credentials"


class TooManyTokenRequests(OAuth2Error):  # type: ignore[misc]
    """429 for an authenticated client over its rate; nobody else can bring it about."""

    error = "temporarily_unavailable"
    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(description="Too many token requests")
        self.retry_after = retry_after

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        return [*headers, ("Retry-After", str(self.retry_after))]


class ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(AUTH_METHODS)


class PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    """RFC 7523 client authentication: an assertion signed with a registered public key."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, audiences: list[str]) -> None:
        super().__init__(validate_jti=True, leeway=ASSERTION_LEEWAY_SECONDS)
        self._audiences = audiences

    def get_audiences(self) -> list[str]:
        return self._audiences

    def __call__(self, query_client: Any, request: OAuth2Request) -> RegisteredClient | None:
        """authlib's flow, with any malformed assertion refused as invalid_client, never 500."""
        try:
            client: RegisteredClient | None = super().__call__(query_client, request)
        except (JoseError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidClientError(description="The client assertion is not valid.") from exc
        return client

    def resolve_client_public_key(self, client: RegisteredClient) -> KeySet:
        # A client without registered keys is answered exactly like an unknown one, so the
        # answer does not tell which client ids exist.
        if client.jwks is None:
            raise InvalidClientError(description=UNKNOWN_CLIENT)
        return KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(ASSERTION_ALGORITHMS))
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidClientError(description="The client assertion is not valid.") from exc
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: dict[str, Any]) -> None:
        # Refuse long-lived assertions first: their jti would have to be kept for as long.
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp > time.time() + MAX_ASSERTION_LIFETIME_SECONDS:
            raise InvalidClientError(description="The client assertion lives too long.")
        super().verify_claims(claims)

    def validate_jti(self, claims: dict[str, Any], jti: Any) -> bool:
        if not isinstance(jti, str) or not jti:
            return False
        until = datetime.fromtimestamp(claims["exp"] + ASSERTION_LEEWAY_SECONDS, UTC)
        return request_scope.get().record_assertion(claims["sub"], jti, until)


class AccessTokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    """RFC 9068 tokens carrying the client's registered jurisdiction or platform."""

    def __init__(self, *, issuer: str, audience: str, lifetime_seconds: int) -> None:
        super().__init__(issuer=issuer, alg=ALGORITHM, expires_generator=lifetime_seconds)
        self._audience = audience

    def get_jwks(self) -> KeySet:
        # A key set (not a bare key) makes joserfc write the key's kid into the header.
        return KeySet([request_scope.get().signing_key])

    def get_audiences(self, _client: RegisteredClient, _user: Any, _scope: str) -> str:
        return self._audience

    def get_extra_claims(
        self, client: RegisteredClient, _grant_type: str, _user: Any, _scope: str
    ) -> dict[str, Any]:
        claims: dict[str, Any] = {"nbf": int(time.time())}
        if client.jurisdiction:
            claims["jurisdiction"] = client.jurisdiction
        if client.platform:
            claims["platform"] = client.platform
        return claims


class StarletteOAuth2Request(OAuth2Request):  # type: ignore[misc]
    """A token request whose urlencoded body was already read on the event loop."""

    def __init__(self, request: Request, form: Mapping[str, str]) -> None:
        super().__init__(request.method, str(request.url), headers=request.headers)
        self._form = dict(form)
        self._args = dict(request.query_params)
        self.payload = BasicOAuth2Payload(self._form)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class StarletteJsonRequest(JsonRequest):  # type: ignore[misc]
    def __init__(self, request: Request, body: Mapping[str, Any]) -> None:
        super().__init__(request.method, str(request.url), request.headers)
        self.payload = _JsonPayload(dict(body))


class _JsonPayload(JsonPayload):  # type: ignore[misc]
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    @property
    def data(self) -> dict[str, Any]:
        return self._data


class IssuerServer(AuthorizationServer):  # type: ignore[misc]
    """Client credentials, authenticated by `client_secret_basic` or `private_key_jwt`; the
    authorization code grant is added by `services.issuer.authorize.register`."""

    def __init__(self, settings: IssuerSettings) -> None:
        super().__init__(scopes_supported=[str(scope) for scope in Scope])
        self.register_grant(ClientCredentials)
        audiences = [settings.token_endpoint, settings.issuer_url]
        self.register_client_auth_method("private_key_jwt", PrivateKeyJWT(audiences))
        self.register_token_generator(
            "default",
            AccessTokenGenerator(
                issuer=settings.issuer_url,
                audience=settings.audience,
                lifetime_seconds=settings.token_lifetime_seconds,
            ),
        )

    def query_client(self, client_id: str) -> RegisteredClient | None:
        return request_scope.get().load_client(client_id)

    def authenticate_client(
        self, request: OAuth2Request, methods: list[str], endpoint: str = "token"
    ) -> RegisteredClient:
        """authlib's client authentication, then the client's own rate limit."""
        client: RegisteredClient = super().authenticate_client(request, methods, endpoint)
        limiter = request_scope.get().client_limiter
        wait = limiter.retry_after(client.client_id) if limiter is not None else None
        if wait is not None:
            raise TooManyTokenRequests(wait)
        return client

    def save_token(self, _token: dict[str, Any], request: OAuth2Request) -> None:
        """JWT access tokens are self-contained; only the fact of issuance is logged."""
        logger.info("issued access token", extra={"client_id": request.client.get_client_id()})

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """authlib's hook for framework signals; nothing here subscribes to them."""

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if not isinstance(request, OAuth2Request):
            raise TypeError("pass a StarletteOAuth2Request built from the read body")
        return request

    def create_json_request(self, request: Any) -> JsonRequest:
        if not isinstance(request, JsonRequest):
            raise TypeError("pass a StarletteJsonRequest built from the read body")
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]] | Mapping[str, str]
    ) -> Response:
        if status == 302:  # the authorization endpoint's answer: back to the client
            return Response(
                status_code=status, headers={**dict(headers), "Cache-Control": "no-store"}
            )
        return JSONResponse(body, status_code=status, headers=dict(headers))
