"""The one guard every case-data route passes through: a brake on writes, a record of reads.

Routes take their caller through `admitted` (inside the Annotated caller dependencies), so no
route can forget either half:
- a write (POST, PATCH, PUT, DELETE) spends one token of the client's bucket, 429 when it is
  empty, and binds the token's jti to the request, so the audit entry the use case writes in
  its own transaction carries the token that made the change;
- a read spends one token of the client's read bucket, 429 when it is empty, then writes one
  `access.read` entry (client, jti, route, object id) before the route runs, batched with
  other reads' entries (`ReadAudit`). A refused read, such as a 404 on another
  jurisdiction's case, is recorded too: probing for other jurisdictions' objects is what an
  investigator wants to find afterwards. The limit keeps one client from growing the audit
  log as fast as it can send requests.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.audit import service as audit
from shared.auth.principal import Principal
from shared.db import transaction
from shared.errors import TooManyRequests
from shared.ratelimit import RateLimiter
from shared.state import ApiState, state_of

MAX_READ_BATCH = 500
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
READ_ACTION = "access.read"
MAX_ID_LENGTH = 64


@asynccontextmanager
async def admitted(
    request: Request, principal: Principal, *, audit_reads: bool = True
) -> AsyncIterator[None]:
    """Rate-limit a write and tag its audit entries with the jti while it runs, or record a read."""
    if request.method not in WRITE_METHODS:
        wait = _read_limiter(request).retry_after(principal.client_id)
        if wait is not None:
            raise TooManyRequests(
                "too many read requests from this client; retry later", retry_after=wait
            )
        if audit_reads:
            await record_read(request, principal)
        yield
        return
    limiter = state_of(request, ApiState).write_limiter
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
    await _read_audit(request).record(
        {
            "actor": principal.client_id,
            "action": READ_ACTION,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "details": details,
        }
    )


def _read_limiter(request: Request) -> RateLimiter:
    """The app's read buckets."""
    return state_of(request, ApiState).read_limiter


def _read_audit(request: Request) -> ReadAudit:
    """The app's batcher of read entries, over its own sessionmaker, made on first use."""
    state = state_of(request, ApiState)
    batcher = _READ_AUDITS.get(state)
    if batcher is None:
        batcher = _READ_AUDITS[state] = ReadAudit(state.sessionmaker)
    return batcher


class ReadAudit:
    """Read entries, written in batches: one transaction and one INSERT for many reads.

    Each read still waits until its entry is committed before its route runs, so no read goes
    unrecorded; but a read arriving while a batch is being written joins the next batch, which
    one flusher task writes (group commit), instead of opening a transaction of its own.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._pending: list[tuple[Mapping[str, Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def record(self, entry: Mapping[str, Any]) -> None:
        """Return once `entry` is committed; raise what the batch's transaction raised."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((entry, done))
        if self._flusher is None or self._flusher.done():
            # A context of its own: the flusher must not carry one request's bound token.
            self._flusher = asyncio.create_task(self._flush(), context=contextvars.Context())
        # Shielded: a reader that goes away must not cancel the write other reads wait for.
        await asyncio.shield(done)

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[:MAX_READ_BATCH]
            del self._pending[:MAX_READ_BATCH]
            try:
                async with transaction(self._sessionmaker) as session:
                    await audit.append_many(session, [entry for entry, _ in batch])
            except Exception as exc:  # every waiter gets the batch's failure, as before
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)


# One batcher per app (its state), gone with the app.
_READ_AUDITS: weakref.WeakKeyDictionary[ApiState, ReadAudit] = weakref.WeakKeyDictionary()
