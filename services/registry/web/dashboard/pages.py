"""The dashboard's pages and its live stream, over the coordinator use cases in-process.

Every page needs a signed-in coordinator (`CoordinatorPage`). The stream relays the registry's
own outbox tail (`services.registry.web.stream`), the same generator the API's `/stream` serves,
because a browser's EventSource cannot send the bearer token that endpoint asks for.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response
from sse_starlette import EventSourceResponse

from services.registry.audit import service as audit
from services.registry.cases.rules import CaseStatus
from services.registry.evidence import repository as evidence_repo
from services.registry.oversight import service as coordinator
from services.registry.oversight.schemas import CaseMap
from services.registry.requests import desk
from services.registry.requests.schemas import DeskRequest
from services.registry.web import stream
from services.registry.web.access import admitted
from services.registry.web.dashboard import pictures
from services.registry.web.dashboard.auth import CoordinatorPage, NotPermitted, SignInRequired
from services.registry.web.dashboard.auth import signed_in as _signed_in
from services.registry.web.dashboard.render import page
from services.registry.web.deps import SessionmakerDep, SettingsDep
from shared.auth.principal import Principal
from shared.db import transaction
from shared.errors import DomainError, NotFound, Unauthorized

router = APIRouter(prefix="/dashboard", include_in_schema=False)
RECENT_RESPONSES = 10
PAGE_SIZE = 50
_CODE = re.compile(r"^[A-Z]{2}$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


@dataclass(frozen=True)
class Matrix:
    """The case map laid out for a table: jurisdictions down, platforms across."""

    jurisdictions: list[str]
    platforms: list[str]
    counts: dict[tuple[str, str], int]
    by_jurisdiction: dict[str, int]
    by_platform: dict[str, int]
    total: int

    @classmethod
    def of(cls, data: CaseMap, *, only: str | None = None) -> Matrix:
        """The whole map, or `only` one platform's column of it."""
        cells = [c for c in data.cells if only is None or c.platform == only]
        by_jurisdiction: dict[str, int] = {}
        for c in cells:
            by_jurisdiction[c.jurisdiction] = by_jurisdiction.get(c.jurisdiction, 0) + c.cases
        return cls(
            jurisdictions=sorted(by_jurisdiction),
            platforms=sorted({c.platform for c in cells}),
            counts={(c.jurisdiction, c.platform): c.cases for c in cells},
            by_jurisdiction=by_jurisdiction,
            by_platform={p: n for p, n in data.by_platform.items() if only in (None, p)},
            total=sum(c.cases for c in cells),
        )


def _status(value: str | None) -> CaseStatus | None:
    return CaseStatus(value) if value in set(CaseStatus) else None


def _matching(pattern: re.Pattern[str], value: str | None) -> str | None:
    return value if value is not None and pattern.match(value) else None


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"no such {what}") from None


def _problem(request: Request, error: DomainError) -> Response:
    context = {"title": error.title, "message": str(error), "alert": True}
    return page(request, "message.html", context, status_code=error.status)


async def _stream_viewer(request: Request) -> AsyncIterator[Principal]:
    """Like a page, but an EventSource cannot follow a sign-in redirect: answer 401 instead."""
    try:
        principal = await _signed_in(request)
    except (SignInRequired, NotPermitted):
        raise Unauthorized("Sign in to the dashboard again", error="invalid_token") from None
    async with admitted(request, principal):
        yield principal


@router.get("", name="dashboard_home")
async def case_map(
    request: Request,
    _who: CoordinatorPage,
    sm: SessionmakerDep,
    status: str | None = None,
    platform: str | None = None,
) -> Response:
    """A map shaded by cases per opening jurisdiction, then the jurisdiction-by-platform table;
    each country and each count links to the cases behind it."""
    chosen, slug = _status(status), _matching(_SLUG, platform)
    async with transaction(sm) as session:
        data = await coordinator.case_map(session, status=chosen)
    slug = slug if slug in data.by_platform else None
    matrix = Matrix.of(data, only=slug)
    counts = matrix.by_jurisdiction
    context = {
        "nav": "map",
        "matrix": matrix,
        "platforms": sorted(data.by_platform),
        "platform": slug,
        "status": chosen,
        "statuses": CaseStatus,
        # The first call projects the atlas (about a second of CPU): keep it off the event loop.
        "panels": await asyncio.to_thread(pictures.case_map, counts),
        "legend": pictures.legend(max(counts.values(), default=0)),
    }
    return page(request, "case_map.html", context)


@router.get("/cases", name="dashboard_cases")
async def cases(
    request: Request,
    _who: CoordinatorPage,
    sm: SessionmakerDep,
    opened_by: str | None = None,
    platform: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
) -> Response:
    """One cell's (or margin's) cases, newest first, metadata only."""
    code, slug, chosen = _matching(_CODE, opened_by), _matching(_SLUG, platform), _status(status)
    try:
        async with transaction(sm) as session:
            items, nxt = await coordinator.list_cases(
                session,
                limit=PAGE_SIZE,
                cursor=cursor,
                opened_by=code,
                platform=slug,
                status=chosen,
            )
    except DomainError as error:
        return _problem(request, error)
    filters = {"opened_by": code, "platform": slug, "status": chosen}
    shown = {k: str(v) for k, v in filters.items() if v is not None}
    context = {"nav": "map", "cases": items, "filters": shown, "next_cursor": nxt}
    return page(request, "cases.html", context)


@router.get("/cases/{case_id}", name="dashboard_case")
async def case(
    request: Request, case_id: str, _who: CoordinatorPage, sm: SessionmakerDep
) -> Response:
    try:
        async with transaction(sm) as session:
            found = await coordinator.read_case(session, case_id=_uuid(case_id, "case"))
    except DomainError as error:
        return _problem(request, error)
    return page(request, "case.html", {"nav": "map", "case": found})


@router.get("/fanout", name="dashboard_fanout")
async def live_fanout(request: Request, _who: CoordinatorPage, sm: SessionmakerDep) -> Response:
    """The latest responses and their recipients, kept current over the stream."""
    async with transaction(sm) as session:
        head = await stream.head(session)  # before the snapshot: the stream repeats, never skips
        recent, _ = await coordinator.list_responses(session, limit=RECENT_RESPONSES)
        fanouts = [await coordinator.fanout(session, response_id=r.id) for r in recent]
    context = {"nav": "fanout", "fanouts": fanouts, "after": head, "response_id": None}
    return page(request, "fanout.html", context)


@router.get("/responses/{response_id}", name="dashboard_response")
async def response_fanout(
    request: Request, response_id: str, _who: CoordinatorPage, sm: SessionmakerDep
) -> Response:
    try:
        async with transaction(sm) as session:
            head = await stream.head(session)
            found = await coordinator.fanout(session, response_id=_uuid(response_id, "response"))
    except DomainError as error:
        return _problem(request, error)
    context = {"nav": "fanout", "fanouts": [found], "after": head, "response_id": found.response.id}
    return page(request, "fanout.html", context)


@dataclass(frozen=True)
class BoardRow:
    """One open request on the deadline board, with its time left (negative when overdue)."""

    request: DeskRequest
    left: timedelta

    @property
    def overdue(self) -> bool:
        return self.left <= timedelta(0)

    @property
    def left_text(self) -> str:
        seconds = int(abs(self.left).total_seconds())
        days, rest = divmod(seconds, 86400)
        text = f"{days} d {rest // 3600} h" if days else f"{rest // 3600} h {rest % 3600 // 60} min"
        return f"overdue by {text}" if self.overdue else text


@router.get("/deadlines", name="dashboard_deadlines")
async def deadline_board(request: Request, _who: CoordinatorPage, sm: SessionmakerDep) -> Response:
    """Open legal requests by time left; overdue ones first, in red."""
    now = datetime.now(UTC)
    async with transaction(sm) as session:
        items = await desk.board(session, limit=PAGE_SIZE * 4)
    rows = [BoardRow(r, r.deadline_at - now) for r in items]
    return page(request, "deadlines.html", {"nav": "deadlines", "rows": rows})


@router.get("/requests/{request_id}", name="dashboard_request")
async def request_history(
    request: Request, request_id: str, _who: CoordinatorPage, sm: SessionmakerDep
) -> Response:
    try:
        async with transaction(sm) as session:
            found, steps = await desk.read(session, request_id=_uuid(request_id, "request"))
    except DomainError as error:
        return _problem(request, error)
    context = {"nav": "deadlines", "req": found, "steps": steps}
    return page(request, "request.html", context)


OPEN_DELETIONS_SHOWN = 20  # recalled deliveries still to be deleted by their recipients


@router.get("/audit", name="dashboard_audit")
async def audit_status(request: Request, _who: CoordinatorPage, sm: SessionmakerDep) -> Response:
    """Walk the hash chain now; one walk at a time, shared with the API's verifier."""
    lock: asyncio.Lock = request.app.state.audit_lock
    async with lock, transaction(sm) as session:
        result = await audit.verify(session)
        waiting = await evidence_repo.open_deletions(session)
        oldest = await evidence_repo.open_deletion_requests(session, limit=OPEN_DELETIONS_SHOWN)
    context = {"nav": "audit", "result": result, "deletions": waiting, "oldest": oldest}
    return page(request, "audit.html", context)


@router.get("/stream", name="dashboard_stream")
async def live_stream(
    request: Request,
    viewer: Annotated[Principal, Depends(_stream_viewer)],
    sm: SessionmakerDep,
    settings: SettingsDep,
    response_id: str | None = None,
    after: str | None = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """Fan-out events for a signed-in browser; a reconnect resumes from `Last-Event-ID`."""
    only = _uuid(response_id, "response") if response_id else None
    return await stream.serve(
        request.app.state.viewers,
        sm,
        settings,
        principal=viewer,
        response_id=only,
        resume_from=stream.resume_point(last_event_id or after),
    )
