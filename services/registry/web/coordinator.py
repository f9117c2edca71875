"""The coordinating desk's read-only API: case map, case and fan-out metadata, live stream.

Thin adapters over `services.registry.oversight.service` and `services.registry.web.stream`;
every route needs `fanout:read` (the audit verifier also accepts `registry:admin`).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse

from services.registry.audit import service as audit
from services.registry.cases.rules import CaseStatus
from services.registry.deliveries.rules import FanoutState
from services.registry.oversight import service as coordinator
from services.registry.oversight import statistics as stats
from services.registry.oversight.schemas import (
    CaseMap,
    CaseMetadata,
    Fanout,
    ResponseMetadata,
    Statistics,
)
from services.registry.web import stream
from services.registry.web.deps import (
    AUDITOR_SECURITY,
    AuditorDep,
    CoordinatorDep,
    SessionmakerDep,
    SettingsDep,
)
from shared.db import transaction
from shared.errors import ValidationFailed
from shared.schemas import MAX_PAGE, Page

router = APIRouter(prefix="/v1/registry", tags=["coordinator"])
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"page size, at most {MAX_PAGE}")]
PlatformFilter = Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
CodeFilter = Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")]
AnchorSeq = Annotated[
    int | None, Query(ge=1, le=2**63 - 1, description="seq of an anchored head (with anchor_hash)")
]
AnchorHash = Annotated[
    str | None, Query(pattern=r"^[0-9a-f]{64}$", description="hash of entry anchor_seq")
]


class AuditVerification(BaseModel):
    ok: bool
    checked: int
    first_broken_seq: int | None
    problem: str | None
    last_seq: int | None
    head_hash: str | None = Field(
        description="hash of entry `last_seq`: keep it (with last_seq) outside the database and"
        " pass both back as an anchor, so a later walk also catches a deleted tail"
    )
    anchored: bool = Field(description="whether the walk was checked against an anchor")


@router.get("/case-map", response_model=CaseMap)
async def case_map(
    _caller: CoordinatorDep,
    sm: SessionmakerDep,
    platform: PlatformFilter = None,
    status: CaseStatus | None = None,
    opened_by: CodeFilter = None,
) -> CaseMap:
    """Case counts per jurisdiction and platform (every status unless filtered), with totals."""
    async with transaction(sm) as session:
        return await coordinator.case_map(
            session, platform=platform, status=status, opened_by=opened_by
        )


@router.get("/cases", response_model=Page[CaseMetadata])
async def list_cases(
    _caller: CoordinatorDep,
    sm: SessionmakerDep,
    limit: Limit = 50,
    cursor: str | None = None,
    platform: PlatformFilter = None,
    status: CaseStatus | None = None,
    opened_by: CodeFilter = None,
) -> Page[CaseMetadata]:
    """Every jurisdiction's cases, newest first: metadata and selector counts, no selectors."""
    async with transaction(sm) as session:
        items, nxt = await coordinator.list_cases(
            session,
            limit=limit,
            cursor=cursor,
            platform=platform,
            status=status,
            opened_by=opened_by,
        )
    return Page[CaseMetadata](items=items, next_cursor=nxt)


@router.get("/cases/{case_id}", response_model=CaseMetadata)
async def get_case(
    case_id: uuid.UUID, _caller: CoordinatorDep, sm: SessionmakerDep
) -> CaseMetadata:
    async with transaction(sm) as session:
        return await coordinator.read_case(session, case_id=case_id)


@router.get("/responses", response_model=Page[ResponseMetadata])
async def list_responses(
    _caller: CoordinatorDep,
    sm: SessionmakerDep,
    limit: Limit = 50,
    cursor: str | None = None,
    platform: PlatformFilter = None,
    fanout_state: FanoutState | None = None,
) -> Page[ResponseMetadata]:
    """Cooperation responses, newest first; what they disclose is never shown."""
    async with transaction(sm) as session:
        items, nxt = await coordinator.list_responses(
            session, limit=limit, cursor=cursor, platform=platform, fanout_state=fanout_state
        )
    return Page[ResponseMetadata](items=items, next_cursor=nxt)


@router.get("/responses/{response_id}/fanout", response_model=Fanout)
async def get_fanout(
    response_id: uuid.UUID, _caller: CoordinatorDep, sm: SessionmakerDep
) -> Fanout:
    """Every delivery and every exclusion of one response, with the rule or reason for each."""
    async with transaction(sm) as session:
        return await coordinator.fanout(session, response_id=response_id)


@router.get("/statistics", response_model=Statistics)
async def get_statistics(
    _caller: CoordinatorDep,
    sm: SessionmakerDep,
    days: Annotated[int, Query(ge=1, le=stats.MAX_DAYS, description="window in days, UTC")] = 30,
    platform: PlatformFilter = None,
) -> Statistics:
    """Responses and requests per day, acknowledgement times, delivery states: metadata only."""
    async with transaction(sm) as session:
        return await stats.statistics(session, days=days, platform=platform)


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "fan-out events"}},
)
async def stream_events(
    request: Request,
    caller: CoordinatorDep,
    sm: SessionmakerDep,
    settings: SettingsDep,
    response_id: uuid.UUID | None = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """Server-Sent Events of fan-out progress; reconnect with `Last-Event-ID` to resume.

    The stream ends with a `reauthenticate` event when the token expires."""
    return await stream.serve(
        request.app.state.viewers,
        sm,
        settings,
        principal=caller,
        response_id=response_id,
        resume_from=stream.resume_point(last_event_id),
    )


@router.get("/audit/verify", response_model=AuditVerification, openapi_extra=AUDITOR_SECURITY)
async def verify_audit(
    request: Request,
    _caller: AuditorDep,
    sm: SessionmakerDep,
    anchor_seq: AnchorSeq = None,
    anchor_hash: AnchorHash = None,
) -> AuditVerification:
    """Walk the whole hash chain; one walk at a time, since each reads the entire log.

    With `anchor_seq` and `anchor_hash` (an earlier answer's `last_seq` and `head_hash`, kept
    elsewhere) the walk also fails if the chain no longer reaches that entry unchanged."""
    if (anchor_seq is None) != (anchor_hash is None):
        raise ValidationFailed("anchor_seq and anchor_hash go together")
    anchor = None
    if anchor_seq is not None and anchor_hash is not None:
        anchor = audit.Anchor(seq=anchor_seq, hash=anchor_hash)
    lock: asyncio.Lock = request.app.state.audit_lock
    async with lock, transaction(sm) as session:
        result = await audit.verify(session, anchor=anchor)
    return AuditVerification(
        ok=result.ok,
        checked=result.checked,
        first_broken_seq=result.first_broken_seq,
        problem=result.problem,
        last_seq=result.last_seq,
        head_hash=result.last_hash if result.last_seq else None,
        anchored=anchor is not None,
    )
