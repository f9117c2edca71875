"""The dashboard as an OAuth 2.0 public client: authorization code with PKCE (S256).

Endpoints come from the issuer's RFC 8414 metadata, so the same code signs in against the
embedded issuer and any OIDC provider. The code is exchanged server-side; the access token
that comes back is validated like any bearer token before a session is made from it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from shared.auth.validation import metadata_urls

logger = logging.getLogger(__name__)

SCOPE = "fanout:read"


class SignInFailed(Exception):
    """The issuer refused, or could not be asked; the user may simply try again."""


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    # RP-initiated logout; without it, signing out ends the dashboard's session only.
    end_session: str | None = None


def new_verifier() -> str:
    """43 to 128 characters from the unreserved set (RFC 7636 4.1); 86 here."""
    return secrets.token_urlsafe(64)


def challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class DashboardOAuth:
    """Discovers the issuer's endpoints once, builds authorization URLs, redeems codes."""

    def __init__(self, *, issuer: str, client_id: str, http: httpx.AsyncClient) -> None:
        self._issuer = issuer
        self._client_id = client_id
        self._http = http
        self._endpoints: Endpoints | None = None

    async def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            self._endpoints = await self._discover()
        return self._endpoints

    async def _discover(self) -> Endpoints:
        for url in metadata_urls(self._issuer):
            try:
                answer = await self._http.get(url)
            except httpx.HTTPError as exc:
                raise SignInFailed("the issuer cannot be reached") from exc
            if answer.status_code != 200:
                continue
            document = answer.json()
            if document.get("issuer") != self._issuer:
                raise SignInFailed("the issuer's metadata names another issuer")
            end_session = document.get("end_session_endpoint")
            try:
                return Endpoints(
                    document["authorization_endpoint"],
                    document["token_endpoint"],
                    end_session if isinstance(end_session, str) else None,
                )
            except KeyError as exc:
                raise SignInFailed("the issuer offers no authorization endpoint") from exc
        raise SignInFailed("the issuer publishes no metadata")

    async def authorization_url(self, *, redirect_uri: str, state: str, verifier: str) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._client_id,
                "redirect_uri": redirect_uri,
                "scope": SCOPE,
                "state": state,
                "code_challenge": challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{(await self.endpoints()).authorization}?{query}"

    async def logout_url(self, *, post_logout_redirect_uri: str) -> str | None:
        """Where to send the browser so the issuer's own session ends too, if it offers that."""
        try:
            end_session = (await self.endpoints()).end_session
        except SignInFailed:
            return None
        if end_session is None:
            return None
        query = urlencode(
            {"client_id": self._client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        )
        return f"{end_session}?{query}"

    async def redeem(self, *, code: str, redirect_uri: str, verifier: str) -> str:
        """The access token for `code`, or `SignInFailed`."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self._client_id,
            "code_verifier": verifier,
        }
        try:
            answer = await self._http.post((await self.endpoints()).token, data=form)
        except httpx.HTTPError as exc:
            raise SignInFailed("the issuer cannot be reached") from exc
        if answer.status_code != 200:
            logger.warning("code redemption refused", extra={"status": answer.status_code})
            raise SignInFailed("the issuer refused the sign-in")
        token = answer.json().get("access_token")
        if not isinstance(token, str):
            raise SignInFailed("the issuer answered without an access token")
        return token
