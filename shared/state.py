"""Typed application state: what a service's request path reads, in one object per app.

Loose `app.state` keys drift: a misspelt key is an AttributeError at request time, and no type
checker sees what is there. Each service keeps one dataclass on its app instead: `create_app`
builds it with what needs no event loop, the lifespan completes the fields marked
`init=False`, and routes read it with `state_of(request, Kind)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from shared.checks import Check
from shared.ratelimit import RateLimiter

if TYPE_CHECKING:  # shared.auth reads this state: importing it here would be a cycle
    from shared.auth.validation import TokenValidator

ATTRIBUTE = "caseshare"
S = TypeVar("S")


@dataclass(eq=False)
class ServiceState:
    """What every service has once started: its engine, sessions and readiness checks."""

    checks: dict[str, Check] = field(default_factory=dict)
    engine: AsyncEngine = field(init=False)
    sessionmaker: async_sessionmaker[AsyncSession] = field(init=False)


@dataclass(eq=False)
class ApiState(ServiceState):
    """An OAuth-protected API: its token validator and the per-client brakes too."""

    write_limiter: RateLimiter = field(kw_only=True)
    read_limiter: RateLimiter = field(kw_only=True)
    token_validator: TokenValidator = field(init=False)


def install(app: Starlette, state: object) -> None:
    """Keep the service's state on the app, under one attribute."""
    setattr(app.state, ATTRIBUTE, state)


def state_of(where: HTTPConnection | Starlette, kind: type[S]) -> S:
    """The app's state as `kind` (a request, a websocket or the app itself)."""
    app = where.app if isinstance(where, HTTPConnection) else where
    found = getattr(app.state, ATTRIBUTE, None)
    if not isinstance(found, kind):
        raise RuntimeError(f"this app keeps no {kind.__name__}")
    return found
