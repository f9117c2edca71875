"""Annotated dependencies of the registry routes: the sessionmaker, settings and callers.

The audit verifier is open to coordinators and administrators alike. `require` demands every
scope it names, so that one route checks the token itself and documents the two alternatives
as separate OpenAPI security requirements.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import SecurityScopes
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.settings import RegistrySettings
from services.registry.state import RegistryState
from services.registry.web.access import admitted
from shared.auth.deps import SCHEME_NAME, authenticate, bearer_token, require
from shared.auth.principal import Principal
from shared.auth.scopes import Scope
from shared.errors import Forbidden
from shared.state import state_of


def _sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    sm = state_of(request, RegistryState).sessionmaker
    return sm


def _settings(request: Request) -> RegistrySettings:
    settings = state_of(request, RegistryState).settings
    return settings


async def _auditor(request: Request) -> AsyncIterator[Principal]:
    principal = await authenticate(SecurityScopes(), request, await bearer_token(request))
    if not (principal.has_scopes(Scope.FANOUT_READ) or principal.has_scopes(Scope.REGISTRY_ADMIN)):
        raise Forbidden(
            f"verifying the audit log needs {Scope.FANOUT_READ} or {Scope.REGISTRY_ADMIN}",
            required_scopes=(Scope.FANOUT_READ,),
        )
    async with admitted(request, principal):
        yield principal


async def _coordinator(
    request: Request, principal: Annotated[Principal, require(Scope.FANOUT_READ)]
) -> AsyncIterator[Principal]:
    async with admitted(request, principal):
        yield principal


async def _admin(
    request: Request, principal: Annotated[Principal, require(Scope.REGISTRY_ADMIN)]
) -> AsyncIterator[Principal]:
    # Reference data is not case data: admin reads are not audited, admin writes are.
    async with admitted(request, principal, audit_reads=False):
        yield principal


# What the OpenAPI document shows for the auditor: either scope suffices.
AUDITOR_SECURITY: dict[str, Any] = {
    "security": [
        {SCHEME_NAME: [Scope.FANOUT_READ.value]},
        {SCHEME_NAME: [Scope.REGISTRY_ADMIN.value]},
    ]
}

SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessionmaker)]
SettingsDep = Annotated[RegistrySettings, Depends(_settings)]
CoordinatorDep = Annotated[Principal, Depends(_coordinator)]
AdminDep = Annotated[Principal, Depends(_admin)]
AuditorDep = Annotated[Principal, Depends(_auditor)]
