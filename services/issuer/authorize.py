"""The authorization code grant with PKCE (S256 only), for public clients such as the dashboard.

A code is stored as a SHA-256 hash, lives a minute, and is consumed by the query that finds it,
so it redeems at most once whatever races; a failed PKCE check burns it too. Like the rest of
the issuer, authlib runs in a worker thread and reaches the request's transaction through
`server.request_scope`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import anyio.from_thread
from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    AuthorizationCodeMixin,
    InvalidRequestError,
    OAuth2Error,
    scope_to_list,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from sqlalchemy.ext.asyncio import AsyncSession

from services.issuer import models, repository
from services.issuer.server import IssuerServer, RegisteredClient, request_scope

logger = logging.getLogger(__name__)

CODE_LIFETIME = timedelta(seconds=60)
PKCE_METHOD = "S256"
T = TypeVar("T")


def _run(function: Callable[..., Coroutine[Any, Any, T]], /, **kwargs: Any) -> T:
    """Run a repository coroutine on the event loop, in this request's transaction."""
    session: AsyncSession = request_scope.get().session
    return anyio.from_thread.run(functools.partial(function, session, **kwargs))


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


@dataclass(frozen=True)
class SignedInUser:
    """authlib's resource owner: who signed in, what they may be granted, and when."""

    id: uuid.UUID
    allowed_scopes: tuple[str, ...]
    auth_time: datetime

    @classmethod
    def from_row(cls, row: models.DevUser, *, auth_time: datetime) -> SignedInUser:
        return cls(id=row.id, allowed_scopes=tuple(row.allowed_scopes), auth_time=auth_time)

    def get_user_id(self) -> str:
        return str(self.id)


@dataclass(frozen=True)
class IssuedCode(AuthorizationCodeMixin):  # type: ignore[misc]
    """A redeemed code's facts, detached from the ORM session."""

    user_id: uuid.UUID
    redirect_uri: str
    scope: str
    code_challenge: str
    code_challenge_method: str
    auth_time: datetime

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_auth_time(self) -> int:
        return int(self.auth_time.timestamp())


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc]
    """RFC 7636 as RFC 9700 recommends it: a challenge is required, and only S256 is accepted.

    authlib's extension lets a request omit the challenge, and treats a missing method as
    `plain`; both are refused here before the user is even asked to sign in.
    """

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = [PKCE_METHOD]
    DEFAULT_CODE_CHALLENGE_METHOD = PKCE_METHOD

    def validate_code_challenge(self, grant: AuthorizationCodeGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        try:
            if not data.get("code_challenge"):
                raise InvalidRequestError("PKCE is required: send a code_challenge")
            if data.get("code_challenge_method") != PKCE_METHOD:
                raise InvalidRequestError("code_challenge_method must be S256")
            super().validate_code_challenge(grant, redirect_uri)
        except OAuth2Error as error:
            error.redirect_uri = redirect_uri  # validated by now: report to the client
            raise


class AuthorizationCode(AuthorizationCodeGrant):  # type: ignore[misc]
    """Codes for public clients only: they authenticate at the token endpoint with `none`."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["none"]

    def create_authorization_response(
        self, redirect_uri: str, grant_user: SignedInUser | None
    ) -> tuple[int, str, list[tuple[str, str]]]:
        """Refuse, at the client, a scope the signed-in user may not hold."""
        if grant_user is not None and not set(scope_to_list(self.request.scope)) <= set(
            grant_user.allowed_scopes
        ):
            raise AccessDeniedError("The user may not grant this scope", redirect_uri=redirect_uri)
        result: tuple[int, str, list[tuple[str, str]]] = super().create_authorization_response(
            redirect_uri, grant_user
        )
        return result

    def save_authorization_code(self, code: str, request: Any) -> None:
        user: SignedInUser = request.user
        client: RegisteredClient = request.client
        row = models.AuthorizationCode(
            code_hash=hash_code(code),
            client_id=client.client_id,
            user_id=user.id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            code_challenge=request.payload.data["code_challenge"],
            code_challenge_method=PKCE_METHOD,
            auth_time=user.auth_time,
            expires_at=datetime.now(UTC) + CODE_LIFETIME,
        )
        _run(repository.save_authorization_code, code=row)

    def query_authorization_code(self, code: str, client: RegisteredClient) -> IssuedCode | None:
        row = _run(
            repository.consume_authorization_code,
            code_hash=hash_code(code),
            client_id=client.client_id,
        )
        if row is None:
            logger.warning("unknown, expired or reused code", extra={"client_id": client.client_id})
            return None
        return IssuedCode(
            user_id=row.user_id,
            redirect_uri=row.redirect_uri,
            scope=row.scope,
            code_challenge=row.code_challenge,
            code_challenge_method=row.code_challenge_method,
            auth_time=row.auth_time,
        )

    def delete_authorization_code(self, authorization_code: IssuedCode) -> None:
        """Nothing to do: `query_authorization_code` consumed the code already."""

    def authenticate_user(self, authorization_code: IssuedCode) -> SignedInUser | None:
        row = _run(repository.get_user, user_id=authorization_code.user_id)
        if row is None:
            return None
        return SignedInUser.from_row(row, auth_time=authorization_code.auth_time)


def register(server: IssuerServer) -> None:
    """Add the authorization code grant, with PKCE required, to the issuer."""
    server.register_grant(AuthorizationCode, [S256CodeChallenge(required=True)])
