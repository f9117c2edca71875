"""Fan-out of cooperation responses: decide standing, record and seal, publish, confirm.

The responses of one fetch go together (ADR 0008): one transaction decides and records them
all, one produce batch publishes their inbox records, one transaction confirms them. Each step
is idempotent, so a crash anywhere replays safely: decisions are recorded once per response
(guarded by its `fanout_state`), delivery ids are derived from (response, jurisdiction), and
publishing a delivery twice carries the same `ce_id`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer
from sqlalchemy import (
    DateTime,
    Integer,
    Text,
    any_,
    bindparam,
    null,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from services.registry.audit import service as audit
from services.registry.cases.models import Case
from services.registry.deliveries.models import Delivery
from services.registry.deliveries.rules import DeliveryState, FanoutState
from services.registry.evidence import keys as hub_keys
from services.registry.evidence.custody import sealed_claims
from services.registry.releases import rules as release_rules
from services.registry.releases import service as releases
from services.registry.releases.rules import ReleaseState
from services.registry.responses.models import CooperationResponse
from services.registry.responses.rules import HandlingCode
from services.registry.standing import repository as candidates
from services.registry.standing import rules
from services.registry.store import bulk
from services.router import exclusions, lookups
from services.router.publish import (
    Outgoing,
    Policy,
    load_outgoing,
    mark_published,
    outgoing,
    produce,
)
from shared import sealing
from shared.db import transaction
from shared.evidence import Signer
from shared.kafka import TopicProvisioner

logger = logging.getLogger(__name__)

DELIVERY_NAMESPACE = uuid.UUID("6f1c2a4e-5b7d-4e0a-9c3b-2d8e1f0a7b61")


def delivery_id(response_id: uuid.UUID, jurisdiction: str) -> uuid.UUID:
    """Deterministic, so every replay of a fan-out names the same delivery."""
    return uuid.uuid5(DELIVERY_NAMESPACE, f"delivery:{response_id}:{jurisdiction}")


def exclusion_id(response_id: uuid.UUID, jurisdiction: str) -> uuid.UUID:
    return uuid.uuid5(DELIVERY_NAMESPACE, f"exclusion:{response_id}:{jurisdiction}")


class UnknownResponse(Exception):
    """The event names a response the registry does not hold: a poison message."""


def _to_rule_response(resp: CooperationResponse) -> rules.Response:
    return rules.Response(
        id=resp.id,
        platform=resp.platform,
        handling_code=HandlingCode(resp.handling_code),
        scope=rules.ResponseScope(
            case_ids=frozenset(resp.scope_case_ids),
            selector_hashes=frozenset(resp.scope_selector_hashes),
            lead_case_id=resp.scope_lead_case_id,
        ),
        requesting_case_id=resp.requesting_case_id,
    )


@dataclass(frozen=True)
class Routed:
    """What a first decision produced: the inbox records to publish, how many were excluded,
    and how many deliveries were sealed (held ones included)."""

    records: list[Outgoing]
    excluded: int
    sealed: int


async def decide_and_record(
    session: AsyncSession,
    *,
    response_id: uuid.UUID,
    prefix: str,
    lapse_after: timedelta = release_rules.DEFAULT_LAPSE,
) -> Routed | None:
    """Run the standing rules once and record every decision; returns the inbox records of the
    new deliveries, or None if the response had been decided already (a replay)."""
    [routed] = await decide_and_record_many(
        session, response_ids=[response_id], prefix=prefix, lapse_after=lapse_after
    )
    return routed


async def decide_and_record_many(
    session: AsyncSession,
    *,
    response_ids: Sequence[uuid.UUID],
    prefix: str,
    lapse_after: timedelta = release_rules.DEFAULT_LAPSE,
) -> list[Routed | None]:
    """`decide_and_record` for several responses in one transaction: each decided in the order
    given, then every row and event of all of them written with one statement per table."""
    routed, _ = await _decide_and_record_many(
        session, response_ids=response_ids, prefix=prefix, lapse_after=lapse_after
    )
    return routed


async def _decide_and_record_many(
    session: AsyncSession,
    *,
    response_ids: Sequence[uuid.UUID],
    prefix: str,
    lapse_after: timedelta,
) -> tuple[list[Routed | None], Signer | None]:
    """`decide_and_record_many`, and the hub key it signed with (None for a replay)."""
    ids = list(dict.fromkeys(response_ids))  # a response fetched twice is decided once
    # one statement locks them all, in id order, whatever order they are decided in
    rows = (await session.execute(_LOCK_RESPONSES, {"ids": ids})).all()
    locked = {r.CooperationResponse.id: r.CooperationResponse for r in rows}
    for response_id in ids:
        if response_id not in locked:
            raise UnknownResponse(f"response {response_id} is not in the registry")
    fresh = [locked[i] for i in ids if locked[i].fanout_state == FanoutState.RECEIVED]
    if not fresh:
        return [None for _ in response_ids], None  # a replay: every decision is recorded
    known = await lookups.current(session, version=rows[0].version, kid=rows[0].kid)
    decided = {d.resp.id: d for d in await _decide(session, fresh, known, prefix)}
    await _record(session, list(decided.values()), prefix=prefix, lapse_after=lapse_after)
    routed = {i: Routed(d.records, len(d.excluded), len(d.deliveries)) for i, d in decided.items()}
    return [routed.get(i) for i in response_ids], known.signer


@dataclass(frozen=True)
class Decided:
    """One response decided and its deliveries sealed, not yet written."""

    resp: CooperationResponse
    planned: list[release_rules.Planned]
    deliveries: list[NewDelivery]
    excluded: list[rules.Decision]
    originator: str | None
    records: list[Outgoing]
    now: datetime


async def _decide(
    session: AsyncSession, fresh: list[CooperationResponse], known: lookups.Lookups, prefix: str
) -> list[Decided]:
    """The standing rules over the cases that can change each decision, the release plans, and
    a sealed delivery for each recipient; reads only, one statement per kind of read for the
    whole batch (the candidate cases with their disclosed selectors, the requesting cases)."""
    responses = [_to_rule_response(r) for r in fresh]
    wanted = [{h for h in (r.disclosure_selector_hashes or ()) if h} for r in fresh]
    loaded = await candidates.load_many(session, responses, disclosed=set().union(*wanted))
    decisions = [
        rules.decide(response, cases=found.cases, jurisdictions=known.jurisdictions)
        for response, found in zip(responses, loaded, strict=True)
    ]
    requesting = await _requesting_cases(session, fresh)
    out = []
    for resp, response, found, decided, among in zip(
        fresh, responses, loaded, decisions, wanted, strict=True
    ):
        now = datetime.now(UTC)
        requester = await releases.requester(session, resp.requesting_case_id)
        planned = release_rules.plan(
            decided,
            statuses=known.statuses,
            handling_code=response.handling_code,
            requester=requester,
            disclosure_hashes=resp.disclosure_selector_hashes,
            case_hashes=_case_hashes(decided, found.disclosed, among),
        )
        platform_jwk = known.platform_keys.get(resp.platform)
        deliveries = [
            _delivery(
                resp, p, known.keys.get(p.decision.jurisdiction), now, known.signer, platform_jwk
            )
            for p in planned
            if p.decision.included
        ]
        records = [
            outgoing(prefix, d, found.references[d.case_id], resp)
            for d in deliveries
            if d.state == DeliveryState.PENDING
        ]
        out.append(
            Decided(
                resp=resp,
                planned=planned,
                deliveries=deliveries,
                excluded=[p.decision for p in planned if not p.decision.included],
                originator=requester.originator if requester else None,
                records=records,
                now=now,
            )
        )
    del requesting  # held until here: the session's identity map keeps only weak references
    return out


async def _requesting_cases(session: AsyncSession, fresh: list[CooperationResponse]) -> list[Case]:
    """The batch's requesting cases, read in one statement into the session, where
    `releases.requester` finds them without a statement of its own; the caller holds the
    returned list while it asks."""
    ids = sorted({r.requesting_case_id for r in fresh if r.requesting_case_id is not None})
    if not ids:
        return []
    return list((await session.scalars(_CASES, {"ids": ids})).all())


def _case_hashes(
    decided: list[rules.Decision], disclosed: dict[uuid.UUID, frozenset[str]], among: set[str]
) -> dict[uuid.UUID, frozenset[str]]:
    """The matched cases' selectors that some of this response's disclosures concern (what
    minimisation keeps per recipient), from what the candidates' statement read."""
    matched = {d.matched_case_id for d in decided if d.included and d.matched_case_id}
    cut = {c: disclosed.get(c, frozenset()) & among for c in matched}
    return {c: hashes for c, hashes in cut.items() if hashes}


async def _record(
    session: AsyncSession, decided: list[Decided], *, prefix: str, lapse_after: timedelta
) -> None:
    """Write what was decided: deliveries, release rows, exclusions with their summary events,
    one audit entry per response, and the responses marked routed (their disclosures dropped:
    only ciphertexts stay), with one statement for the whole batch."""
    if not decided:
        return
    await bulk.write(session, *_rows(decided, prefix=prefix, lapse_after=lapse_after))
    for x in decided:  # the session's objects as the statement left the rows
        routed = {"fanout_state": FanoutState.ROUTED, "routed_at": x.now}
        for name, value in {"disclosures": None, "platform_signature": None, **routed}.items():
            set_committed_value(x.resp, name, value)


def _rows(decided: list[Decided], *, prefix: str, lapse_after: timedelta) -> list[bulk.Rows]:
    """Every row the batch's decisions write, table by table (a table with no rows is left
    out of the statement)."""
    plans = [
        releases.Recorded(
            planned=x.planned,
            response=x.resp,
            delivery_ids={d.jurisdiction: d.id for d in x.deliveries},
            originator=x.originator,
            now=x.now,
        )
        for x in decided
    ]
    refused = [
        exclusions.Refused(
            response_id=x.resp.id,
            decided_at=x.now,
            each=[(exclusion_id(x.resp.id, d.jurisdiction), d) for d in x.excluded],
            event_id=uuid.uuid5(DELIVERY_NAMESPACE, f"exclusions:{x.resp.id}"),
        )
        for x in decided
    ]
    entries, _ = audit.staged_many(
        [
            {
                "actor": "router",
                "action": "routing.decided",
                "subject_type": "response",
                "subject_id": str(x.resp.id),
                "details": {"decisions": [_audited(p) for p in x.planned]},
            }
            for x in decided
        ]
    )
    return [
        bulk.Rows(_DELIVERIES, [d._asdict() for x in decided for d in x.deliveries]),
        *releases.staged_many(plans, lapse_after=lapse_after, prefix=prefix),
        *exclusions.staged(refused, prefix=prefix),
        entries,
        bulk.Rows(_ROUTED, [{"id": x.resp.id, "routed_at": x.now} for x in decided]),
    ]


class NewDelivery(NamedTuple):
    """A delivery as decided, sealed and inserted; the inbox record is built from it."""

    id: uuid.UUID
    response_id: uuid.UUID
    jurisdiction: str
    case_id: uuid.UUID
    rule: str
    detail: str
    sealed_disclosures: str | None
    recipient_kid: str | None
    disclosure_count: int | None
    state: str
    attempts: int
    created_at: datetime


_DELIVERIES = bulk.RowInserter(
    Delivery,
    columns={
        "id": PG_UUID(as_uuid=True),
        "response_id": PG_UUID(as_uuid=True),
        "jurisdiction": Text(),
        "case_id": PG_UUID(as_uuid=True),
        "rule": Text(),
        "detail": Text(),
        "sealed_disclosures": Text(),
        "recipient_kid": Text(),
        "disclosure_count": Integer(),
        "state": Text(),
        "attempts": Integer(),
        "created_at": DateTime(timezone=True),
    },
)


def _delivery(
    resp: CooperationResponse,
    p: release_rules.Planned,
    jwk: dict[str, Any] | None,
    now: datetime,
    signer: Signer,
    platform_jwk: dict[str, Any] | None,
) -> NewDelivery:
    """One recipient's delivery, sealed with only the disclosures minimisation chose for it;
    held (unpublished) until the originator releases it, where release rules say so."""
    d = p.decision
    assert d.matched_case_id is not None
    sealed, kid, count = None, None, None
    ident = delivery_id(resp.id, d.jurisdiction)
    if resp.disclosures is not None and resp.disclosure_selector_hashes is not None:
        count = len(p.disclosures)
    if jwk is not None and resp.disclosures is not None:
        payload = resp.disclosures
        if resp.disclosure_selector_hashes is not None:
            payload = [resp.disclosures[i] for i in p.disclosures]
        # The platform signed the whole set. A minimised payload cannot carry that signature
        # without revealing what minimisation kept back (the JWS holds every disclosure), so
        # only a recipient of the complete set gets the platform's signature to verify.
        whole = len(payload) == len(resp.disclosures)
        claims = sealed_claims(
            resp, ident, d.jurisdiction, payload, platform_jwk if whole else None
        )
        sealed = sealing.seal_signed(claims, jwk, signer)
        kid = jwk.get("kid")
    else:
        logger.warning(
            "no public key registered; disclosures withheld",
            extra={"jurisdiction": d.jurisdiction, "response_id": str(resp.id)},
        )
    return NewDelivery(
        id=ident,
        response_id=resp.id,
        jurisdiction=d.jurisdiction,
        case_id=d.matched_case_id,
        rule=d.reason.value,
        detail=d.detail,
        sealed_disclosures=sealed,
        recipient_kid=kid,
        disclosure_count=count,
        state=DeliveryState.HELD if p.state is ReleaseState.HELD else DeliveryState.PENDING,
        attempts=0,
        created_at=now,
    )


def _audited(p: release_rules.Planned) -> dict[str, Any]:
    """One routing decision as the audit log keeps it: who, yes or no, why, on which case,
    and for a recipient whether it receives now or waits for the originator, and why."""
    d = p.decision
    return {
        "jurisdiction": d.jurisdiction,
        "included": d.included,
        "reason": d.reason.value,
        "case_id": str(d.matched_case_id) if d.matched_case_id else None,
        "release": p.state.value if p.state else None,
        "basis": p.basis.value if p.basis else None,
    }


# Built once: building a statement costs more than running these.
_CASES = select(Case).where(Case.id == any_(bindparam("ids", type_=ARRAY(PG_UUID(as_uuid=True)))))
_LOCK_RESPONSES = (
    select(
        CooperationResponse,
        lookups.VERSION.label("version"),
        hub_keys.ACTIVE_KID.label("kid"),
    )
    .where(CooperationResponse.id == any_(bindparam("ids", type_=ARRAY(PG_UUID(as_uuid=True)))))
    .order_by(CooperationResponse.id)
    .with_for_update()
    .execution_options(populate_existing=True)
)
# The responses routed, their disclosures and the platform's signature over them dropped: part
# of the batch's one statement (the unit of work spent more on tracking the objects).
_ROUTED = bulk.RowUpdater(
    CooperationResponse,
    key="id",
    columns={"id": PG_UUID(as_uuid=True), "routed_at": DateTime(timezone=True)},
    values=lambda _, given: {
        "disclosures": null(),
        "platform_signature": null(),
        "fanout_state": FanoutState.ROUTED.value,
        "routed_at": given.routed_at,
    },
)


# The publication's first statement; a response completed already stays as it is.
_COMPLETE = bulk.RowUpdater(
    CooperationResponse,
    key="id",
    columns={"id": PG_UUID(as_uuid=True)},
    values=lambda _, __: {"fanout_state": FanoutState.COMPLETED.value},
    where=lambda table: table.c.fanout_state == FanoutState.ROUTED.value,
)


@dataclass(frozen=True)
class FanoutResult:
    """Counts for the metrics: deliveries produced, jurisdictions newly excluded; and the
    deliveries sealed (held ones too), which size the consumer's next batch."""

    produced: int
    excluded: int
    sealed: int


async def process_response(
    sm: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    provisioner: TopicProvisioner,
    *,
    response_id: uuid.UUID,
    prefix: str,
    policy: Policy,
    lapse_after: timedelta = release_rules.DEFAULT_LAPSE,
) -> FanoutResult:
    """The whole fan-out of one response: what was produced, and who was excluded now."""
    return await process_responses(
        sm,
        producer,
        provisioner,
        response_ids=[response_id],
        prefix=prefix,
        policy=policy,
        lapse_after=lapse_after,
    )


async def process_responses(
    sm: async_sessionmaker[AsyncSession],
    producer: AIOKafkaProducer,
    provisioner: TopicProvisioner,
    *,
    response_ids: Sequence[uuid.UUID],
    prefix: str,
    policy: Policy,
    lapse_after: timedelta = release_rules.DEFAULT_LAPSE,
) -> FanoutResult:
    """The fan-out of several responses as one: every decision recorded in one transaction, in
    the order given; their inbox records produced as one batch; then one transaction marks
    them published and the responses completed. A failure anywhere rolls back or replays the
    whole group, and every step is idempotent, so a replay names the same deliveries.

    A first run builds the inbox records from the decisions it has just recorded; only a
    replay (a response decided before) reads its pending deliveries back."""
    records: list[Outgoing] = []
    excluded = sealed = 0
    ids = list(dict.fromkeys(response_ids))
    async with transaction(sm) as session:
        decided, signer = await _decide_and_record_many(
            session, response_ids=ids, prefix=prefix, lapse_after=lapse_after
        )
        for response_id, routed in zip(ids, decided, strict=True):
            if routed is None:
                records += await load_outgoing(session, prefix=prefix, pending_of=response_id)
            else:
                records += routed.records
                excluded += routed.excluded
                sealed += routed.sealed
    await produce(producer, provisioner, records)
    async with transaction(sm) as session:
        # Responses before their deliveries, the order a recall locks them in: folded into
        # mark_published's one statement, the responses would be locked after the deliveries,
        # and a recall of the same response in between would deadlock with it.
        await bulk.write(session, bulk.Rows(_COMPLETE, [{"id": i} for i in ids]))
        # the key the decisions were signed with: a rotation since is seen by the next batch,
        # and evidence signed by a key retired a moment ago verifies (its public half stays)
        await mark_published(session, records=records, policy=policy, prefix=prefix, signer=signer)
    return FanoutResult(produced=len(records), excluded=excluded, sealed=sealed)
