"""The one guard every case-data route passes through: a brake on writes, a record of reads.

Routes take their caller through `admitted` (inside the Annotated caller dependencies), so no
route can forget either half:
- a write (POST, PATCH, PUT, DELETE) spends one token of the client's bucket, 429 when it is
  empty, and binds the token's jti to the request, so the audit entry the use case writes in
  its own transaction carries the token that made the change;
- a read writes one `access.read` entry (client, jti, route, object id) in a short transaction
  of its own before the route runs. A refused read, such as a 404 on another jurisdiction's
  case, is recorded too: probing for other jurisdictions' objects is what an investigator
  wants to find afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.audit import service as audit
from shared.auth.principal import Principal
from shared.db import transaction
from shared.errors import TooManyRequests
from shared.ratelimit import RateLimiter

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
READ_ACTION = "access.read"
MAX_ID_LENGTH = 64


@asynccontextmanager
async def admitted(
    request: Request, principal: Principal, *, audit_reads: bool = True
) -> AsyncIterator[None]:
    """Rate-limit a write and tag its audit entries with the jti while it runs, or record a read."""
    if request.method not in WRITE_METHODS:
        if audit_reads:
            await record_read(request, principal)
        yield
        return
    limiter: RateLimiter = request.app.state.write_limiter
    wait = limiter.retry_after(principal.client_id)
    if wait is not None:
        raise TooManyRequests(
            "too many write requests from this client; retry later", retry_after=wait
        )
    binding = audit.bind_token(client_id=principal.client_id, token_id=principal.token_id)
    try:
        yield
    finally:
        audit.unbind_token(binding)


async def record_read(request: Request, principal: Principal) -> None:
    """One audit entry for this read: the object when the route names one, else the route."""
    route = request.scope.get("route")
    template = f"{request.method} {getattr(route, 'path', request.url.path)}"
    subject_type, subject_id = "route", template
    for name, value in request.path_params.items():
        if name.endswith("_id"):  # e.g. case_id -> ("case", its id)
            subject_type, subject_id = name.removesuffix("_id"), str(value)[:MAX_ID_LENGTH]
            break
    details = {"route": template, "token_id": principal.token_id}
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with transaction(sessionmaker) as session:
        await audit.append(
            session,
            actor=principal.client_id,
            action=READ_ACTION,
            subject_type=subject_type,
            subject_id=subject_id,
            details=details,
        )
