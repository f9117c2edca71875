"""The SQL of case registration, intake's hot path: one call of a server-side function.

Registration used to cost eight round trips (BEGIN, references, locks, case with selectors,
cross-match, outbox, audit, COMMIT), and with PostgreSQL on the same cores each one was a
wake-up of the server and a preemption of intake. `register_case` (migration 0015) does the
reads, locks and writes of a registration in one call from rows built here; it decides
nothing of its own (docs/adr/0009-register-case-in-one-round-trip.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.cases.rules import References
from services.registry.store import locks

# Positional, so the same text runs on the driver connection and through SQLAlchemy.
_REGISTER = "SELECT outcome, refs, matches FROM register_case($1, $2, $3, $4, $5, $6, $7, $8)"
_OPEN_MATCHES = text(
    "SELECT id, opened_by, reference FROM case_open_matches(:hashes, :platform, :opener)"
)


class Outcome(StrEnum):
    """What `register_case` did; see migration 0015."""

    REFUSED = "refused"  # references the rule does not accept: nothing written
    HIT = "hit"  # alone, and an open case of another jurisdiction matches: nothing written
    DUPLICATE = "duplicate"  # the opener already used the reference: nothing written
    MATCHED = "matched"  # case and selectors written; links, events and audit are the caller's
    REGISTERED = "registered"  # everything written


@dataclass(frozen=True)
class Registration:
    """Every row one registration writes, and what it checks first, built before the call."""

    case: dict[str, Any]
    selectors: list[dict[str, str]]  # kind, value_hash, masked, in order
    accepted: str  # JSON list of the reference states the rule accepts
    lock_keys: list[str]
    outbox: list[dict[str, Any]]  # from `outbox.rows`
    audit: list[dict[str, Any]]  # from `audit.queued_rows`


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    refs: References
    matches: list[tuple[uuid.UUID, str]]  # (case id, opener), by case id


def _arguments(plan: Registration, *, alone: bool, accepted: str | None = None) -> list[Any]:
    return [
        alone,
        orjson.dumps(plan.case).decode(),
        orjson.dumps(plan.selectors).decode(),
        plan.accepted if accepted is None else accepted,
        locks.REGISTRATION_SPACE,
        locks.idents(plan.lock_keys),
        orjson.dumps(plan.outbox).decode(),
        orjson.dumps(plan.audit).decode(),
    ]


def _result(row: Any) -> Result:
    outcome, refs, matches = row
    return Result(
        Outcome(outcome),
        References(**refs),
        [(uuid.UUID(case_id), opener) for case_id, opener in matches or ()],
    )


async def register(session: AsyncSession, plan: Registration) -> Result:
    """Run the registration in the session's transaction: a hit is written as `MATCHED`."""
    conn = await session.connection()
    result = await conn.exec_driver_sql(_REGISTER, tuple(_arguments(plan, alone=False)))
    return _result(result.one())


async def register_alone(conn: Any, plan: Registration) -> Result:
    """Run the registration as a transaction of its own on a driver connection that is in
    none (`shared.db.single_statements`): one round trip. A hit writes nothing (`HIT`)."""
    return _result(await conn.fetchrow(_REGISTER, *_arguments(plan, alone=True)))


async def references(session: AsyncSession, plan: Registration) -> References:
    """Only read the references (nothing is accepted, so nothing is written)."""
    conn = await session.connection()
    result = await conn.exec_driver_sql(
        _REGISTER, tuple(_arguments(plan, alone=True, accepted="[]"))
    )
    return _result(result.one()).refs


async def open_matches(
    session: AsyncSession, *, hashes: Collection[str], platform: str, opener: str
) -> Sequence[Row[tuple[uuid.UUID, str, str]]]:
    """Open cases of other jurisdictions on `platform` with a selector among `hashes`."""
    params = {"hashes": list(hashes), "platform": platform, "opener": opener}
    return (await session.execute(_OPEN_MATCHES, params)).all()
