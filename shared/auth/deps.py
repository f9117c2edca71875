"""FastAPI dependencies that turn a bearer token into a `Principal` and enforce scopes.

Routes declare what they need with `require(Scope.X)` (or the authority / platform variants); the
OpenAPI document then shows the client-credentials flow and each operation's scopes. The
validator is the app's `ApiState.token_validator`, which each service sets in its lifespan.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes
from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import HTTPConnection

from shared.auth.principal import Principal
from shared.auth.scopes import SCOPE_DESCRIPTIONS, Scope
from shared.errors import Forbidden, Unauthorized
from shared.settings import OAuthSettings
from shared.state import ApiState, state_of

SCHEME_NAME = "OAuth2ClientCredentials"
# Only what the OpenAPI document shows until `document_token_url` names the real issuer.
DEFAULT_TOKEN_URL = f"{OAuthSettings.model_fields['oauth_issuer'].default}/token"


class OAuth2ClientCredentialsBearer(OAuth2):
    """Documents the client-credentials flow; reads the token from `Authorization: Bearer`."""

    def __init__(self, *, token_url: str, scopes: dict[str, str]) -> None:
        flow = OAuthFlowClientCredentials(tokenUrl=token_url, scopes=scopes)
        super().__init__(
            flows=OAuthFlows(clientCredentials=flow), scheme_name=SCHEME_NAME, auto_error=False
        )

    async def __call__(self, request: HTTPConnection) -> str | None:
        scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
        if scheme.lower() != "bearer" or not token:
            return None
        return token


bearer_token = OAuth2ClientCredentialsBearer(token_url=DEFAULT_TOKEN_URL, scopes=SCOPE_DESCRIPTIONS)


async def authenticate(
    security_scopes: SecurityScopes,
    request: Request,
    token: Annotated[str | None, Depends(bearer_token)],
) -> Principal:
    """Validate the bearer token and check it grants every scope the route requires."""
    if token is None:
        raise Unauthorized("A bearer access token is required", error="invalid_request")
    validator = state_of(request, ApiState).token_validator
    principal = await validator.validate(token)
    missing = [scope for scope in security_scopes.scopes if scope not in principal.scopes]
    if missing:
        raise Forbidden(
            "The access token lacks a scope this operation requires",
            required_scopes=tuple(security_scopes.scopes),
        )
    request.state.principal = principal
    return principal


def require(*scopes: Scope) -> Any:
    """`Annotated[Principal, require(Scope.CASES_READ)]`: any caller holding these scopes."""
    return Security(authenticate, scopes=[str(scope) for scope in scopes])


def document_token_url(app: FastAPI, token_url: str) -> None:
    """Show this deployment's token endpoint in the app's OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        already_built = app.openapi_schema is not None
        schema = generate()
        if not already_built:
            schemes = schema.get("components", {}).get("securitySchemes", {})
            flows = schemes.get(SCHEME_NAME, {}).get("flows", {})
            if "clientCredentials" in flows:
                flows["clientCredentials"]["tokenUrl"] = token_url
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
