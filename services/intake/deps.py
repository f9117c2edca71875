"""Annotated dependencies of the intake routes: the caller as an actor, the use-case context.

Each caller dependency also passes the request through `access.admitted`, so every route that
touches case data is rate-limited (writes) or audited (reads) without saying so itself.

All are `async def`: FastAPI runs a plain `def` dependency in a worker thread, a hop per
dependency per request that costs more than the dependency itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import SecurityScopes
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.state import IntakeState
from services.registry.context import Actor, Context
from services.registry.evidence.service import Recaller
from services.registry.web.access import admitted
from shared.auth.deps import SCHEME_NAME, authenticate, bearer_token, require
from shared.auth.principal import Principal
from shared.auth.scopes import Scope
from shared.errors import Forbidden
from shared.state import state_of


async def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sm = state_of(request, IntakeState).sessionmaker
    return sm


async def _context(request: Request) -> Context:
    ctx = state_of(request, IntakeState).context
    return ctx


def _authority(principal: Principal) -> Actor:
    if principal.jurisdiction is None:
        raise Forbidden("this operation is for national authorities (jurisdiction claim)")
    return Actor(client_id=principal.client_id, jurisdiction=principal.jurisdiction)


async def _writer(
    request: Request, principal: Annotated[Principal, require(Scope.CASES_WRITE)]
) -> AsyncIterator[Actor]:
    actor = _authority(principal)
    async with admitted(request, principal):
        yield actor


async def _reader(
    request: Request, principal: Annotated[Principal, require(Scope.CASES_READ)]
) -> AsyncIterator[Actor]:
    actor = _authority(principal)
    async with admitted(request, principal):
        yield actor


async def _inbox(
    request: Request, principal: Annotated[Principal, require(Scope.INBOX_READ)]
) -> AsyncIterator[Actor]:
    actor = _authority(principal)
    async with admitted(request, principal):
        yield actor


async def _platform(
    request: Request, principal: Annotated[Principal, require(Scope.RESPONSES_WRITE)]
) -> AsyncIterator[Principal]:
    if principal.platform is None:
        raise Forbidden("responses are submitted by platforms (platform claim)")
    async with admitted(request, principal):
        yield principal


# What the OpenAPI document shows for recall: either kind of caller, each with its scope.
RECALLER_SECURITY: dict[str, Any] = {
    "security": [
        {SCHEME_NAME: [Scope.RESPONSES_WRITE.value]},
        {SCHEME_NAME: [Scope.CASES_WRITE.value]},
    ]
}


async def _recaller(request: Request) -> AsyncIterator[Recaller]:
    """Who may ask to recall a response: a platform holding `responses:write`, or an authority
    holding `cases:write` (whether it is the originator is decided with the response). Checked
    before the body is validated, like every scope; documented by `RECALLER_SECURITY`."""
    principal = await authenticate(SecurityScopes(), request, await bearer_token(request))
    if principal.platform is not None and principal.has_scopes(Scope.RESPONSES_WRITE):
        who = Recaller(client_id=principal.client_id, platform=principal.platform)
    elif principal.jurisdiction is not None and principal.has_scopes(Scope.CASES_WRITE):
        who = Recaller(client_id=principal.client_id, jurisdiction=principal.jurisdiction)
    else:
        # The scope this kind of caller lacks, for the insufficient_scope challenge.
        needed = Scope.RESPONSES_WRITE if principal.platform is not None else Scope.CASES_WRITE
        raise Forbidden(
            "recall is for platforms (responses:write) and authorities (cases:write)",
            required_scopes=(needed,),
        )
    async with admitted(request, principal):
        yield who


SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessionmaker)]
ContextDep = Annotated[Context, Depends(_context)]
CaseWriterDep = Annotated[Actor, Depends(_writer)]
CaseReaderDep = Annotated[Actor, Depends(_reader)]
InboxReaderDep = Annotated[Actor, Depends(_inbox)]
PlatformDep = Annotated[Principal, Depends(_platform)]
RecallerDep = Annotated[Recaller, Depends(_recaller)]
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Retries with the same key get the first answer"),
]
