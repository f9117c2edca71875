"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the `end_session_endpoint`.

Signing out of the dashboard alone left the issuer's sign-in cookie, so the next visit signed
straight back in. Here the cookie is deleted and its session is remembered as ended, so even a
copy of the cookie no longer signs anyone in. The browser is then sent back to the client only
to an address on the origin of one of the client's registered redirect URIs (no open
redirect); otherwise it sees a signed-out page.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode, urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.issuer import repository, signin
from services.issuer.models import ClientKind

logger = logging.getLogger(__name__)


async def end_session(
    request: Request, *, sessionmaker: async_sessionmaker[AsyncSession], sign_in: signin.SignIn
) -> Response:
    """End this browser's issuer session, then return to the client if it asked to."""
    params = await signin.parameters(request)
    signin.forget(request, sign_in)
    target = None
    if params is not None:
        target = await _return_address(
            sessionmaker,
            client_id=params.get("client_id", ""),
            uri=params.get("post_logout_redirect_uri", ""),
        )
    if target is None:
        response = signin.page(request, "signed_out.html", {})
    else:
        state = params.get("state") if params else None
        query = f"{'&' if '?' in target else '?'}{urlencode({'state': state})}" if state else ""
        response = RedirectResponse(target + query, status_code=303)
        response.headers["Cache-Control"] = "no-store"
    response.delete_cookie(signin.COOKIE, path="/")
    return response


async def _return_address(
    sessionmaker: async_sessionmaker[AsyncSession], *, client_id: str, uri: str
) -> str | None:
    if not client_id or not uri:
        return None
    async with sessionmaker.begin() as session:
        client = await repository.get_client(session, client_id=client_id)
    if client is None or client.kind != ClientKind.PUBLIC:
        return None
    wanted = _origin(uri)
    if wanted is None or wanted not in {_origin(known) for known in client.redirect_uris}:
        logger.info("post-logout redirect refused", extra={"client_id": client_id})
        return None
    return uri


def _origin(uri: str) -> tuple[str, str] | None:
    parts = urlsplit(uri)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.fragment:
        return None
    return parts.scheme, parts.netloc
