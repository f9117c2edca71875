"""Accepting a platform's cooperation response: validate its scope, store it with its outbox
event in one transaction. Routing happens later, in the router, from the committed row."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.audit import service as audit
from services.registry.cases import selectors
from services.registry.cases.models import Case
from services.registry.cases.schemas import SelectorIn
from services.registry.context import Context
from services.registry.deliveries.rules import FanoutState
from services.registry.evidence import custody
from services.registry.evidence import service as evidence
from services.registry.evidence.rules import EvidenceKind
from services.registry.reference.models import Platform
from services.registry.requests import answers
from services.registry.responses.models import CooperationResponse
from services.registry.responses.rules import HandlingCode
from services.registry.responses.schemas import ResponseAccepted, ResponseCreate
from services.registry.store import outbox
from shared.errors import ValidationFailed
from shared.events import ResponseReceived


def _hash_all(ctx: Context, sels: list[SelectorIn], where: str) -> list[str]:
    out: list[str] = []
    for index, sel in enumerate(sels):
        try:
            normalised = selectors.normalise(sel.kind, sel.value)
        except selectors.InvalidSelector as exc:
            raise ValidationFailed(f"{where}[{index}]: {exc}") from exc
        out.append(selectors.selector_hash(ctx.hmac_key, sel.kind, normalised))
    return sorted(set(out))


async def _check_cases(session: AsyncSession, platform: str, ids: set[uuid.UUID]) -> None:
    """Named cases must exist and target the submitting platform (no cross-platform probing)."""
    if not ids:
        return
    found = set(
        (
            await session.scalars(
                select(Case.id).where(
                    Case.id == any_(bindparam("ids", list(ids), type_=ARRAY(PG_UUID))),
                    Case.platform == platform,
                )
            )
        ).all()
    )
    if missing := ids - found:
        raise ValidationFailed(
            f"{len(missing)} case(s) in the request are unknown for platform {platform}"
        )


async def submit(
    session: AsyncSession, *, platform: str, client_id: str, data: ResponseCreate, ctx: Context
) -> ResponseAccepted:
    """Store a response and queue `ResponseReceived`; disclosures stay only until fan-out."""
    platform_row = await session.get(Platform, platform)
    if platform_row is None:
        raise ValidationFailed(f"unknown platform {platform!r}")
    disclosures = [d.model_dump(mode="json") for d in data.disclosures]
    signature = custody.check_platform_signature(
        platform_row.signing_jwk, data.disclosures_signature, disclosures
    )
    named = set(data.scope.case_ids)
    extra = {c for c in (data.requesting_case_id, data.scope.lead_case_id) if c is not None}
    await _check_cases(session, platform, named | extra)
    scope_hashes = _hash_all(ctx, data.scope.selectors, "scope.selectors")
    # kept in order, one per disclosure: the router minimises each payload by them
    disclosure_hashes = [
        _hash_all(ctx, [disclosure.selector], f"disclosures[{index}].selector")[0]
        for index, disclosure in enumerate(data.disclosures)
    ]
    disclosed = set(disclosure_hashes)
    now = datetime.now(UTC)
    requesting_case_id, fanout_state, answer = data.requesting_case_id, FanoutState.RECEIVED, None
    if data.request_id is not None:
        request, answer = await answers.check(
            session,
            request_id=data.request_id,
            platform=platform,
            requesting_case_id=data.requesting_case_id,
            selector_hashes=disclosed | set(scope_hashes),
            categories={d.category for d in data.disclosures},
            now=now,
        )
        requesting_case_id, fanout_state = answer.case_id, answer.fanout_state
    row = CooperationResponse(
        id=uuid.uuid4(),
        platform=platform,
        submitted_by_client=client_id,
        request_reference=data.request_reference,
        request_id=data.request_id,
        requesting_case_id=requesting_case_id,
        scope_case_ids=sorted(named),
        scope_selector_hashes=scope_hashes,
        scope_lead_case_id=data.scope.lead_case_id,
        handling_code=data.handling_code.value,
        handling_conditions=data.handling_conditions,
        disclosure_selector_hashes=disclosure_hashes,
        disclosures=disclosures,
        disclosure_count=len(data.disclosures),
        platform_signature=signature,
        emergency=data.emergency,
        fanout_state=fanout_state.value,
        issued_at=data.issued_at,
        received_at=now,
    )
    session.add(row)
    if answer is not None:
        await session.flush()
        await answers.answered(
            session, request, response_id=row.id, actor=client_id, ctx=ctx, now=now
        )
    # a response held for the enforcing state's review reaches the router only when released
    if fanout_state is FanoutState.RECEIVED:
        event = ResponseReceived(
            response_id=row.id,
            platform=platform,
            handling_code=row.handling_code,
            emergency=row.emergency,
            received_at=now,
        )
        outbox.add(session, event, key=str(row.id), subject=str(row.id), prefix=ctx.topic_prefix)
    digest = await audit.append(
        session,
        actor=client_id,
        action="response.received",
        subject_type="response",
        subject_id=str(row.id),
        details={
            "platform": platform,
            "handling_code": row.handling_code,
            "disclosures": row.disclosure_count,
            "named_cases": len(named),
            "selectors": len(scope_hashes),
            "request_id": str(data.request_id) if data.request_id else None,
            "fanout_state": row.fanout_state,
        },
    )
    await evidence.record(
        session,
        evidence.Fact(
            EvidenceKind.SUBMISSION_ACCEPTED,
            "response",
            str(row.id),
            client_id,
            response_id=row.id,
            details={
                "platform": platform,
                "handling_code": row.handling_code,
                "disclosures": row.disclosure_count,
                "platform_signed": row.platform_signature is not None,
            },
            audit_digest=digest,
        ),
    )
    return ResponseAccepted(
        id=row.id,
        platform=platform,
        handling_code=HandlingCode(row.handling_code),
        fanout_state=row.fanout_state,
        received_at=now,
        request_id=row.request_id,
    )
