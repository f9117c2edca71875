"""The rows one registration writes, built in Python before its one call of `register_case`.

Everything a registration writes is known before it reaches the database: the case as its
opener will see it (the answer, not read back), its hashed and masked selectors, its events,
its audit entry, the locks it takes and the reference states the rule accepts.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from functools import lru_cache

import orjson

from services.registry.audit import service as audit
from services.registry.cases import coordination, repository, rules, selectors
from services.registry.cases.rules import CaseStatus
from services.registry.cases.schemas import CaseCreate, CaseOut, SelectorOut
from services.registry.context import Actor, Context
from services.registry.store import outbox
from shared.errors import ValidationFailed
from shared.events import CaseRegistered


def _hashed_selectors(ctx: Context, data: CaseCreate) -> dict[tuple[str, str], str]:
    """(kind, hash) -> masked form; invalid selectors are refused with their position."""
    out: dict[tuple[str, str], str] = {}
    for index, sel in enumerate(data.selectors):
        try:
            normalised = selectors.normalise(sel.kind, sel.value)
        except selectors.InvalidSelector as exc:
            raise ValidationFailed(f"selectors[{index}]: {exc}") from exc
        digest = selectors.selector_hash(ctx.hmac_key, sel.kind, normalised)
        out[(sel.kind.value, digest)] = selectors.mask(sel.kind, normalised)
    return out


def plan(actor: Actor, data: CaseCreate, ctx: Context) -> tuple[CaseOut, repository.Registration]:
    """The case as its opener will see it, and every row its registration writes."""
    hashed = _hashed_selectors(ctx, data)
    out = _new_case(actor, data, hashed)
    case_id = str(out.id)
    events = [outbox.Pending(_registered(out), key=case_id, subject=case_id)]
    if out.status is not CaseStatus.OPEN:
        events.insert(0, coordination.request(out))
    audit_rows, _ = audit.queued_rows(
        [
            {
                "actor": actor.client_id,
                "action": "case.registered",
                "subject_type": "case",
                "subject_id": case_id,
                "details": {
                    "opened_by": out.opened_by,
                    "platform": out.platform,
                    "selectors": len(hashed),
                    "coordinator": out.coordinating_jurisdiction,
                    "status": out.status.value,
                    "release_policy": out.release_policy.value,
                },
            }
        ]
    )
    plan = repository.Registration(
        case=out.model_dump(exclude={"selectors"}) | {"created_by_client": actor.client_id},
        selectors=[
            {"kind": kind, "value_hash": digest, "masked": masked}
            for (kind, digest), masked in hashed.items()
        ],
        accepted=_accepted(actor.jurisdiction, data.coordinating_jurisdiction, data.lead_case_id),
        lock_keys=[f"reference:{actor.jurisdiction}:{data.reference}"]
        + [f"selector:{data.platform}:{digest}" for _, digest in hashed],
        outbox=outbox.rows(events, prefix=ctx.topic_prefix),
        audit=audit_rows,
    )
    return out, plan


def reading(actor: Actor, data: CaseCreate) -> repository.Registration:
    """A registration that names only its references, to read them and write nothing."""
    case = {
        "id": None,
        "opened_by": actor.jurisdiction,
        "platform": data.platform,
        "coordinating_jurisdiction": data.coordinating_jurisdiction,
        "lead_case_id": data.lead_case_id,
    }
    return repository.Registration(case, [], "[]", [], [], [])


@lru_cache(maxsize=4096)
def _accepted_json(opener: str, coordinator: str | None, *, lead_given: bool) -> str:
    accepted = rules.accepted_references(opener, coordinator, lead_given=lead_given)
    return orjson.dumps([dataclasses.asdict(refs) for refs in accepted]).decode()


def _accepted(opener: str, coordinator: str | None, lead: uuid.UUID | None) -> str:
    return _accepted_json(opener, coordinator, lead_given=lead is not None)


def _new_case(actor: Actor, data: CaseCreate, hashed: dict[tuple[str, str], str]) -> CaseOut:
    """The case about to be inserted, as its opener will see it.

    Built without validating again: every value comes from the validated body, the token,
    the rules or here, in the types `CaseOut` declares (a test validates one against it).
    """
    now = datetime.now(UTC)
    status, coordination_state = rules.initial_status(data.coordinating_jurisdiction)
    return CaseOut.model_construct(
        id=uuid.uuid4(),
        reference=data.reference,
        opened_by=actor.jurisdiction,
        platform=data.platform,
        coordinating_jurisdiction=data.coordinating_jurisdiction,
        lead_case_id=data.lead_case_id,
        offence_categories=list(data.offence_categories),
        legal_basis=data.legal_basis,
        selectors=[
            SelectorOut.model_construct(kind=selectors.SelectorKind(kind), masked=masked)
            for (kind, _), masked in hashed.items()
        ],
        status=status,
        emergency=data.emergency,
        release_policy=data.release_policy,
        coordination_state=coordination_state,
        version=1,
        created_at=now,
        updated_at=now,
    )


def _registered(out: CaseOut) -> CaseRegistered:
    return CaseRegistered(
        case_id=out.id,
        reference=out.reference,
        opened_by=out.opened_by,
        platform=out.platform,
        coordinating_jurisdiction=out.coordinating_jurisdiction,
        lead_case_id=out.lead_case_id,
        emergency=out.emergency,
        registered_at=out.created_at,
    )
