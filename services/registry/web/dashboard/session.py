"""Dashboard sessions: the access token stays in this process, the browser holds a reference.

The browser gets two signed, HttpOnly, SameSite=Lax cookies: a short-lived one carrying the
OAuth `state` and PKCE verifier between the redirect to the issuer and the callback, and one
carrying only a random session id. The token itself never reaches the browser or its scripts.
Sessions end with their token (minutes); the issuer's own sign-in lets the next one start
without a password. The signing key is made per process, like the in-memory store it guards.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from shared.cookies import SignedValue

SESSION_COOKIE = "caseshare_dashboard"
LOGIN_COOKIE = "caseshare_dashboard_login"
LOGIN_SECONDS = 600
COOKIE_PATH = "/dashboard"


@dataclass(frozen=True)
class Session:
    token: str
    expires_at: float
    csrf: str


@dataclass(frozen=True)
class LoginState:
    state: str
    verifier: str
    next_path: str


class Sessions:
    """Signed-in browsers, by session id; bounded, and expired entries are dropped as met."""

    def __init__(self, *, limit: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        key = secrets.token_bytes(32)
        self._session_cookie = SignedValue(key, purpose="dashboard-session")
        self._login_cookie = SignedValue(key, purpose="dashboard-login")
        self._items: dict[str, Session] = {}
        self._limit = limit
        self._clock = clock

    def start(self, response: Response, request: Request, *, token: str, expires_at: float) -> None:
        """Remember `token` and hand the browser a reference to it."""
        now = self._clock()
        if len(self._items) >= self._limit:
            self._items = {k: s for k, s in self._items.items() if s.expires_at > now}
        if len(self._items) >= self._limit:  # still full: the oldest sign-ins go first
            for sid in list(self._items)[: self._limit // 10 or 1]:
                del self._items[sid]
        sid = secrets.token_urlsafe(32)
        self._items[sid] = Session(
            token=token, expires_at=expires_at, csrf=secrets.token_urlsafe(24)
        )
        _set(response, request, SESSION_COOKIE, self._session_cookie.dumps({"sid": sid}), None)

    def current(self, request: Request) -> Session | None:
        """This browser's session while its token lasts."""
        sid = self._sid(request)
        session = self._items.get(sid) if sid else None
        if session is None or session.expires_at <= self._clock():
            if sid:
                self._items.pop(sid, None)
            return None
        return session

    def end(self, request: Request, response: Response) -> None:
        sid = self._sid(request)
        if sid:
            self._items.pop(sid, None)
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)

    def _sid(self, request: Request) -> str | None:
        data = self._session_cookie.loads(request.cookies.get(SESSION_COOKIE), max_age=86400)
        sid = data.get("sid") if data else None
        return sid if isinstance(sid, str) else None

    def begin_login(self, response: Response, request: Request, login: LoginState) -> None:
        value = self._login_cookie.dumps(
            {"state": login.state, "verifier": login.verifier, "next": login.next_path}
        )
        _set(response, request, LOGIN_COOKIE, value, LOGIN_SECONDS)

    def pending_login(self, request: Request) -> LoginState | None:
        data: dict[str, Any] | None = self._login_cookie.loads(
            request.cookies.get(LOGIN_COOKIE), max_age=LOGIN_SECONDS
        )
        if data is None:
            return None
        try:
            return LoginState(str(data["state"]), str(data["verifier"]), str(data["next"]))
        except KeyError:
            return None

    @staticmethod
    def finish_login(response: Response) -> None:
        response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)


def _set(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
