"""Use cases of the issuer: issue a token (throttled), publish its keys and its metadata.

Token requests are read and throttled on the event loop, then handed to authlib in a worker
thread inside one database transaction, so client lookup, assertion replay checks and signing
all see the same snapshot and the replay record commits with the answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from authlib.oauth2.rfc6749 import InsecureTransportError
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from joserfc import jws
from joserfc.errors import JoseError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.issuer import keys
from services.issuer.server import (
    ASSERTION_ALGORITHMS,
    AUTH_METHODS,
    IssuerServer,
    RequestScope,
    StarletteOAuth2Request,
    request_scope,
)
from services.issuer.settings import IssuerSettings
from shared.auth.scopes import Scope
from shared.keywrap import KeyRing
from shared.ratelimit import GuessingThrottle, RateLimiter, peer_address

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_TOKEN_REQUEST_BYTES = 16 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def metadata(settings: IssuerSettings) -> dict[str, Any]:
    """RFC 8414 authorization server metadata."""
    issuer = settings.issuer_url.rstrip("/")
    return {
        "issuer": settings.issuer_url,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": settings.token_endpoint,
        "jwks_uri": f"{issuer}/jwks.json",
        "end_session_endpoint": f"{issuer}/logout",
        "grant_types_supported": ["client_credentials", "authorization_code"],
        # "none" is how the public (PKCE) clients authenticate at the token endpoint.
        "token_endpoint_auth_methods_supported": [*AUTH_METHODS, "none"],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "scopes_supported": [str(scope) for scope in Scope],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
    }


async def jwks_document(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    """The published public keys."""
    async with sessionmaker.begin() as session:
        return await keys.jwks(session)


async def issue_token(
    request: Request,
    *,
    server: IssuerServer,
    sessionmaker: async_sessionmaker[AsyncSession],
    limits: TokenLimits,
    key_ring: KeyRing,
) -> Response:
    """Answer a token request in RFC 6749 form, throttled without locking anyone out.

    Before authentication only the peer is limited: by its request rate, and by its own failed
    authentications of the client it names. The client's own rate is spent once it has
    authenticated, so no request without its credentials can make it wait.
    """
    form = await _read_form(request)
    if isinstance(form, Response):
        return form
    claimed = claimed_client_id(request, form)
    if form.get("client_id", claimed) != claimed:
        return oauth_error(400, "invalid_request", "client_id does not match the credentials")
    peer = peer_address(request.client)
    wait = limits.per_peer.retry_after(peer) or limits.guessing.retry_after(
        account=claimed, peer=peer
    )
    if wait is not None:
        return too_many_requests(wait)
    try:
        oauth_request = StarletteOAuth2Request(request, form)
    except InsecureTransportError:
        return oauth_error(400, "invalid_request", "Token requests must use HTTPS")
    async with sessionmaker.begin() as session:
        scope = RequestScope(
            session=session,
            signing_key=await keys.active_signing_key(session, key_ring),
            client_limiter=limits.per_client,
        )
        reset = request_scope.set(scope)
        try:
            response: Response = await anyio.to_thread.run_sync(
                server.create_token_response, oauth_request
            )
        finally:
            request_scope.reset(reset)
    if _client_not_authenticated(response):
        limits.guessing.failed(account=claimed, peer=peer)
    elif response.status_code == 200:
        limits.guessing.succeeded(account=claimed, peer=peer)
    return response


@dataclass(frozen=True)
class TokenLimits:
    """The token endpoint's throttles; each keys on the real peer or an authenticated client."""

    per_peer: RateLimiter
    per_client: RateLimiter
    guessing: GuessingThrottle

    @classmethod
    def from_settings(cls, settings: IssuerSettings) -> TokenLimits:
        rate, burst = settings.token_rate_per_second, settings.token_rate_burst
        return cls(
            per_peer=RateLimiter(rate=rate, burst=burst),
            per_client=RateLimiter(rate=rate, burst=burst),
            guessing=GuessingThrottle.create(
                free_per_account=settings.failed_auth_free_per_client,
                free_per_peer=settings.failed_auth_free_per_peer,
            ),
        )


def _client_not_authenticated(response: Response) -> bool:
    if response.status_code == 401:
        return True
    if response.status_code != 400:
        return False
    try:
        return bool(json.loads(bytes(response.body)).get("error") == "invalid_client")
    except ValueError:
        return False


def too_many_requests(wait: int) -> JSONResponse:
    return oauth_error(
        429, "temporarily_unavailable", "Too many token requests", {"Retry-After": str(wait)}
    )


def claimed_client_id(request: Request, form: Mapping[str, str]) -> str:
    """The client id a request claims, before authentication; only used for throttling."""
    client_id, _secret = extract_basic_authorization(request.headers)
    if client_id:
        return str(client_id)
    assertion = form.get("client_assertion")
    if assertion:
        try:
            sub = json.loads(jws.extract_compact(assertion.encode()).payload).get("sub")
        except (JoseError, ValueError, AttributeError):
            return ""
        return sub if isinstance(sub, str) else ""
    return form.get("client_id", "")


async def _read_form(request: Request) -> dict[str, str] | Response:
    """The urlencoded body, refusing other media types, oversize bodies and repeated fields."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM_CONTENT_TYPE:
        return oauth_error(400, "invalid_request", f"The body must be {FORM_CONTENT_TYPE}")
    body = await request.body()
    if len(body) > MAX_TOKEN_REQUEST_BYTES:
        return oauth_error(400, "invalid_request", "The request body is too large")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        return oauth_error(400, "invalid_request", "The body is not valid form data")
    form = dict(pairs)
    if len(form) != len(pairs):
        return oauth_error(400, "invalid_request", "A parameter is repeated")
    if "authorization" in request.headers and "client_assertion" in form:
        return oauth_error(400, "invalid_request", "Use one client authentication method")
    return form


def oauth_error(
    status: int, error: str, description: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An RFC 6749 section 5.2 error, the shape OAuth client libraries expect."""
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={**NO_STORE, **(headers or {})},
    )
