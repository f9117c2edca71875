"""Signing coordinators in and out of the dashboard, and the dependency every page requires.

A page reached without a session redirects to the issuer and comes back to where it was; the
callback checks `state`, redeems the code with the PKCE verifier, and validates the token like
any bearer token before it is trusted.
"""

from __future__ import annotations

import hmac
import html
import logging
import re
import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.registry.state import RegistryState
from services.registry.web.access import admitted
from services.registry.web.dashboard.oauth import DashboardOAuth, SignInFailed, new_verifier
from services.registry.web.dashboard.render import page
from services.registry.web.dashboard.session import LoginState, Sessions
from shared.auth.principal import Principal
from shared.auth.scopes import Scope
from shared.errors import Unauthorized
from shared.state import state_of

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/dashboard", include_in_schema=False)
HOME = "/dashboard"
OAUTH_ERROR = re.compile(r"^[a-z_]{1,40}$")


class SignInRequired(Exception):
    """Raised by a page without a valid session; answered with a redirect to sign in."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class NotPermitted(Exception):
    """The signed-in user's token lacks `fanout:read`."""


def _sessions(request: Request) -> Sessions:
    sessions = state_of(request, RegistryState).dashboard_sessions
    return sessions


def _oauth(request: Request) -> DashboardOAuth:
    oauth = state_of(request, RegistryState).dashboard_oauth
    return oauth


async def signed_in(request: Request) -> Principal:
    """The coordinator behind this browser's session, or `SignInRequired`."""
    session = _sessions(request).current(request)
    if session is None:
        raise SignInRequired(_local(request.url.path + _query(request)))
    validator = state_of(request, RegistryState).token_validator
    try:
        principal = await validator.validate(session.token)
    except Unauthorized:
        raise SignInRequired(_local(request.url.path + _query(request))) from None
    if not principal.has_scopes(Scope.FANOUT_READ):
        raise NotPermitted
    request.state.dashboard_csrf = session.csrf
    return principal


async def _coordinator_page(
    request: Request, principal: Annotated[Principal, Depends(signed_in)]
) -> AsyncIterator[Principal]:
    """Through the same access guard as the API, so a page view is an audited read too."""
    async with admitted(request, principal):
        yield principal


CoordinatorPage = Annotated[Principal, Depends(_coordinator_page)]


def _query(request: Request) -> str:
    return f"?{request.url.query}" if request.url.query else ""


def _local(path: str) -> str:
    """Only a dashboard path may be returned to: never another site (open redirect)."""
    if path == HOME or (path.startswith(HOME + "/") and not path.startswith("//")):
        return path
    return HOME


def _callback(request: Request) -> str:
    return str(request.url_for("dashboard_callback"))


@router.get("/login")
async def login(
    request: Request, next_path: Annotated[str, Query(alias="next")] = HOME
) -> Response:
    """Send the browser to the issuer with a fresh state and PKCE challenge."""
    state = LoginState(secrets.token_urlsafe(24), new_verifier(), _local(next_path))
    try:
        url = await _oauth(request).authorization_url(
            redirect_uri=_callback(request), state=state.state, verifier=state.verifier
        )
    except SignInFailed as exc:
        return page(request, "message.html", _failed(str(exc)), status_code=503)
    response = RedirectResponse(url, status_code=303)
    _sessions(request).begin_login(response, request, state)
    return response


@router.get("/callback", name="dashboard_callback")
async def callback(
    request: Request, code: str | None = None, state: str | None = None, error: str | None = None
) -> Response:
    """Finish sign-in: same state as sent, code redeemed with the verifier, token validated."""
    sessions = _sessions(request)
    pending = sessions.pending_login(request)
    if pending is None or state is None or not hmac.compare_digest(pending.state, state):
        return page(request, "message.html", _failed("the sign-in expired"), status_code=400)
    if error is not None or code is None:
        said = error if error and OAUTH_ERROR.match(error) else "an unknown error"
        return page(request, "message.html", _failed(f"the issuer said {said}"), status_code=400)
    try:
        token = await _oauth(request).redeem(
            code=code, redirect_uri=_callback(request), verifier=pending.verifier
        )
        validator = state_of(request, RegistryState).token_validator
        principal = await validator.validate(token)
    except (SignInFailed, Unauthorized) as exc:
        return page(request, "message.html", _failed(str(exc)), status_code=400)
    response = RedirectResponse(pending.next_path, status_code=303)
    sessions.start(response, request, token=token, expires_at=principal.expires_at.timestamp())
    sessions.finish_login(response)
    logger.info("coordinator signed in", extra={"subject": principal.subject})
    return response


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    """End this browser's session, then the issuer's; a form post with the CSRF token.

    Through the issuer's end_session_endpoint, so that the next sign-in asks for the password
    again instead of reusing the issuer's sign-in cookie.
    """
    sessions = _sessions(request)
    session = sessions.current(request)
    if session is not None and not hmac.compare_digest(session.csrf, csrf):
        return page(request, "message.html", _failed("the sign-out form is stale"), status_code=400)
    signed_out = str(request.url_for("dashboard_signed_out"))
    issuer_logout = await _oauth(request).logout_url(post_logout_redirect_uri=signed_out)
    response: Response
    if issuer_logout is None:
        response = RedirectResponse(signed_out, status_code=303)
    else:
        response = _leave_for(issuer_logout)
    sessions.end(request, response)
    return response


def _leave_for(url: str) -> Response:
    """A page that moves on to `url` at once, instead of a redirect.

    The pages' `form-action 'self'` also covers where a form's answer redirects to, so a 303
    from the sign-out form to the issuer would be blocked by the browser; a refresh is not.
    """
    target = html.escape(url, quote=True)
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0;url={target}"><title>Signing out</title></head>'
        f'<body><p><a href="{target}">Finish signing out</a></p></body></html>'
    )
    headers = {
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
        "Cache-Control": "no-store",
    }
    return HTMLResponse(body, headers=headers)


@router.get("/signed-out", name="dashboard_signed_out")
async def signed_out(request: Request) -> Response:
    return page(
        request,
        "message.html",
        {
            "title": "Signed out",
            "message": "You are signed out of the dashboard.",
            "action": ("Sign in again", HOME),
        },
    )


def _failed(reason: str) -> dict[str, object]:
    return {
        "title": "Sign-in did not complete",
        "message": f"Sign-in did not complete: {reason}.",
        "action": ("Try again", f"{HOME}/login"),
        "alert": True,
    }
