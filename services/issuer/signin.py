"""The authorization endpoint: a minimal sign-in page in front of the authorization code grant.

The request is validated before anyone is asked for a password, so a page is only shown for a
registered client and redirect URI; errors before that point are shown here, never redirected.
A successful sign-in is remembered in a signed, HttpOnly cookie, so the dashboard's next
authorization (its access tokens live minutes) needs no password. The cookie's key is made
per process: restarting the issuer signs everyone out.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from authlib.oauth2.rfc6749 import OAuth2Error
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from services.issuer import keys, repository, users
from services.issuer.authorize import SignedInUser
from services.issuer.server import IssuerServer, RequestScope, StarletteOAuth2Request, request_scope
from services.issuer.state import IssuerState
from shared.cookies import SignedValue
from shared.ratelimit import GuessingThrottle, RateLimiter, peer_address
from shared.state import state_of

logger = logging.getLogger(__name__)

COOKIE = "caseshare_issuer_session"
SESSION_SECONDS = 8 * 3600
CREDENTIAL_FIELDS = ("email", "password")
MAX_FIELD_LENGTH = 2048
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not no-referrer: Chromium then sends `Origin: null` with the form, and the origin check
    # below could not tell the sign-in page from a sandboxed frame elsewhere.
    "Referrer-Policy": "same-origin",
}
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


@dataclass
class SignIn:
    """What the endpoint needs besides authlib: the cookie signer and the guessing throttles.

    Wrong passwords are throttled per (account, peer) and per peer, never per account alone:
    anyone may type a coordinator's address, and their failures must not lock the coordinator
    out of signing in from elsewhere.
    """

    cookie: SignedValue
    per_peer: RateLimiter
    guessing: GuessingThrottle
    secure_cookie: bool
    # Sessions signed out before their cookie expired, by session id, until it would have.
    ended: dict[str, float] = field(default_factory=dict)

    @classmethod
    def create(
        cls, *, issuer_url: str, free_per_account: int = 5, free_per_peer: int = 20
    ) -> SignIn:
        key = secrets.token_bytes(32)
        return cls(
            cookie=SignedValue(key, purpose="issuer-session"),
            per_peer=RateLimiter(rate=1.0, burst=30),
            guessing=GuessingThrottle.create(
                free_per_account=free_per_account, free_per_peer=free_per_peer
            ),
            secure_cookie=issuer_url.startswith("https://"),
        )


async def authorize(
    request: Request,
    *,
    server: IssuerServer,
    sessionmaker: async_sessionmaker[AsyncSession],
    sign_in: SignIn,
) -> Response:
    """GET shows the sign-in page (or answers at once when signed in); POST checks a password."""
    params = await parameters(request)
    if params is None:
        return _error_page(request, "The request repeats a parameter or is too large.")
    oauth_params = {k: v for k, v in params.items() if k not in CREDENTIAL_FIELDS}
    async with sessionmaker.begin() as session:
        if request.method == "POST":
            refusal = _refuse_post(request, sign_in, params.get("email", ""))
            if refusal is not None:
                return refusal
            row = await users.authenticate(
                session, email=params.get("email", ""), password=params.get("password", "")
            )
            _count_attempt(request, sign_in, params.get("email", ""), succeeded=row is not None)
            user = SignedInUser.from_row(row, auth_time=datetime.now(UTC)) if row else None
        else:
            user = await _signed_in_user(session, request, sign_in)
        answer = await _in_authlib(session, server, request, oauth_params, user)
    if answer is not None and answer.status_code != 302:
        return _error_page(request, _description(answer))
    if answer is None:
        failed = request.method == "POST"
        return _sign_in_page(request, oauth_params, failed=failed)
    if request.method == "POST" and user is not None:
        logger.info("user signed in", extra={"user_id": str(user.id)})
        _remember(answer, sign_in, user)
    return answer


async def _in_authlib(
    session: AsyncSession,
    server: IssuerServer,
    request: Request,
    params: dict[str, str],
    user: SignedInUser | None,
) -> Response | None:
    """Validate (and, with a user, answer) the authorization request in a worker thread."""
    oauth_request = StarletteOAuth2Request(request, params)
    ring = state_of(request, IssuerState).key_ring
    scope = RequestScope(session=session, signing_key=await keys.active_signing_key(session, ring))
    reset = request_scope.set(scope)
    try:
        return await anyio.to_thread.run_sync(_decide, server, oauth_request, user)
    finally:
        request_scope.reset(reset)


def _decide(
    server: IssuerServer, oauth_request: StarletteOAuth2Request, user: SignedInUser | None
) -> Response | None:
    """None when the request is valid but nobody is signed in yet."""
    try:
        grant = server.get_consent_grant(oauth_request, end_user=user)
    except OAuth2Error as error:
        response: Response = server.handle_error_response(oauth_request, error)
        return response
    if user is None:
        return None
    answer: Response = server.create_authorization_response(
        oauth_request, grant_user=user, grant=grant
    )
    return answer


async def parameters(request: Request) -> dict[str, str] | None:
    """Query parameters (GET) or form fields (POST), refusing repeats and oversized values."""
    if request.method == "POST":
        form = await request.form()
        pairs = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    else:
        pairs = list(request.query_params.multi_items())
    params = dict(pairs)
    if len(params) != len(pairs) or any(len(v) > MAX_FIELD_LENGTH for v in params.values()):
        return None
    return params


def _refuse_post(request: Request, sign_in: SignIn, email: str) -> Response | None:
    """Refuse cross-origin posts (login CSRF) and throttle password guessing."""
    origin = request.headers.get("origin")
    own = f"{request.url.scheme}://{request.url.netloc}"
    if origin is not None and origin != own:
        return _error_page(request, "Sign-in must be submitted from this page.", status=403)
    peer = peer_address(request.client)
    wait = sign_in.per_peer.retry_after(peer) or sign_in.guessing.retry_after(
        account=_account(email), peer=peer
    )
    if wait is None:
        return None
    page = _error_page(request, f"Too many attempts. Try again in {wait} seconds.", status=429)
    page.headers["Retry-After"] = str(wait)
    return page


def _count_attempt(request: Request, sign_in: SignIn, email: str, *, succeeded: bool) -> None:
    peer = peer_address(request.client)
    if succeeded:
        sign_in.guessing.succeeded(account=_account(email), peer=peer)
    else:
        sign_in.guessing.failed(account=_account(email), peer=peer)


def _account(email: str) -> str:
    return email.strip().lower()


async def _signed_in_user(
    session: AsyncSession, request: Request, sign_in: SignIn
) -> SignedInUser | None:
    data = sign_in.cookie.loads(request.cookies.get(COOKIE), max_age=SESSION_SECONDS)
    if data is None:
        return None
    try:
        user_id, auth_time, sid = uuid.UUID(str(data["uid"])), int(data["at"]), str(data["sid"])
    except (KeyError, TypeError, ValueError):
        return None
    if sid in sign_in.ended:
        return None
    row = await repository.get_user(session, user_id=user_id)
    if row is None:
        return None
    return SignedInUser.from_row(row, auth_time=datetime.fromtimestamp(auth_time, UTC))


def _remember(response: Response, sign_in: SignIn, user: SignedInUser) -> None:
    at = int(user.auth_time.timestamp())
    value = sign_in.cookie.dumps({"uid": str(user.id), "at": at, "sid": secrets.token_urlsafe(16)})
    response.set_cookie(
        COOKIE,
        value,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="lax",
        secure=sign_in.secure_cookie,
        path="/",
    )


def forget(request: Request, sign_in: SignIn) -> None:
    """Remember this browser's session as ended, so its cookie no longer signs anyone in."""
    data = sign_in.cookie.loads(request.cookies.get(COOKIE), max_age=SESSION_SECONDS)
    now = time.time()
    for sid, until in list(sign_in.ended.items()):
        if until <= now:
            del sign_in.ended[sid]
    if data is not None and isinstance(data.get("sid"), str):
        sign_in.ended[data["sid"]] = now + SESSION_SECONDS
        logger.info("user signed out", extra={"user_id": str(data.get("uid"))})


def page(
    request: Request, template: str, context: dict[str, Any], *, status: int = 200
) -> Response:
    """A page of the issuer's own, with the same headers as the sign-in page."""
    nonce = secrets.token_urlsafe(16)
    return templates.TemplateResponse(
        request,
        template,
        {**context, "nonce": nonce},
        status_code=status,
        headers={**PAGE_HEADERS, "Content-Security-Policy": _csp(nonce)},
    )


def _csp(nonce: str, form_targets: str = "") -> str:
    return (
        f"default-src 'none'; style-src 'nonce-{nonce}'; img-src data:; "
        f"form-action 'self' {form_targets}; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def _sign_in_page(request: Request, params: dict[str, str], *, failed: bool) -> Response:
    nonce = secrets.token_urlsafe(16)
    redirect = urlsplit(params.get("redirect_uri", ""))
    # Chromium applies form-action to the redirect that follows a successful sign-in.
    target = f"{redirect.scheme}://{redirect.netloc}" if redirect.netloc else ""
    context: dict[str, Any] = {"params": params, "failed": failed, "nonce": nonce}
    return templates.TemplateResponse(
        request,
        "sign_in.html",
        context,
        headers={**PAGE_HEADERS, "Content-Security-Policy": _csp(nonce, target)},
    )


def _error_page(request: Request, message: str, *, status: int = 400) -> Response:
    return page(request, "sign_in_error.html", {"message": message}, status=status)


def _description(answer: Response) -> str:
    try:
        body = json.loads(bytes(answer.body))
    except ValueError:
        return "The authorization request is not valid."
    return str(body.get("error_description") or body.get("error") or "invalid request")
